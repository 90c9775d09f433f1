-- bridge_cluster.lua: two mqbrokers joined through a RabbitMQ cluster's
-- quorum queue, and nothing receipted lost while nodes die
-- (docs/bridges.md, "Proof"). Run by ci/cluster-test (three RabbitMQ nodes,
-- 100,000 messages) and, short, by tests/integration/test_bridge_rabbitmq.py
-- (one node); both start the cluster with ci/rabbitmq-cluster and declare
-- the quorum queue first.
--
--   producers -> mqbroker A /queue/orders -> bridge out -> RabbitMQ /amq/queue/orders
--     -> bridge in -> mqbroker B /queue/orders -> consumers
--
-- During the run the RabbitMQ node A's bridge is connected to is killed
-- with SIGKILL and started again, then A itself is killed with SIGKILL and
-- started again. The check: every message A receipted reaches B's
-- consumers (at_least_once with acked = true: 0 lost). Repeats are
-- allowed; B's inbound bridge drops those it recognises (dedup), and the
-- report counts what got through.
--
-- Environment: MQ_RABBIT_DIR and MQ_RABBIT_HOSTS (from ci/rabbitmq-cluster),
-- MQ_RABBIT_CTL (the script, default ci/rabbitmq-cluster), MQ_COUNT
-- (default 100000), MQ_RATE (messages/s, default 5000).

local dir = assert(os.getenv("MQ_RABBIT_DIR"), "MQ_RABBIT_DIR: the cluster's directory (ci/rabbitmq-cluster)")
local hosts = assert(os.getenv("MQ_RABBIT_HOSTS"), "MQ_RABBIT_HOSTS: host:port,... of the STOMP listeners")
local ctl = os.getenv("MQ_RABBIT_CTL") or "ci/rabbitmq-cluster"
local count = tonumber(os.getenv("MQ_COUNT") or "100000")
local rate = tonumber(os.getenv("MQ_RATE") or "5000")

local list = {}
for h in hosts:gmatch("[^,]+") do list[#list + 1] = h end
-- B starts from the other end of the list: the two bridges use different nodes.
local reversed = {}
for i = #list, 1, -1 do reversed[#reversed + 1] = list[i] end

local function sh(cmd)
	local ok = os.execute(cmd)
	expect(ok, "command failed: " .. cmd)
end

local a = broker{ config = [[
destinations = { { "/queue/orders", persistent = true } }
bridges = { {
	name = "to-cluster", direction = "out", from = "/queue/orders", to = "/amq/queue/orders",
	hosts = "]] .. hosts .. [[", login = "guest", passcode = "guest",
	window = 1000, heartbeat = "2s", reconnect_min = "100ms", reconnect_max = "2s",
} }
]] }
local b = broker{ config = [[
destinations = { { "/queue/orders", persistent = true } }
bridges = { {
	name = "from-cluster", direction = "in", from = "/amq/queue/orders", to = "/queue/orders",
	hosts = "]] .. table.concat(reversed, ",") .. [[", login = "guest", passcode = "guest",
	window = 1000, heartbeat = "2s", reconnect_min = "100ms", reconnect_max = "2s", dedup = "1h",
} }
]] }
expect(wait_for(function() return a:bridge("to-cluster").state == "running" end, 30), "A's bridge connected: " ..
	a:bridge("to-cluster").error)
expect(wait_for(function() return b:bridge("from-cluster").state == "running" end, 30), "B's bridge connected: " ..
	b:bridge("from-cluster").error)

local c = consumers{ broker = b, destination = "/queue/orders", n = 2, ack = "client-individual",
	max_unconfirmed = 500 }
local p = producers{ broker = a, destination = "/queue/orders", n = 4, count = count, rate = rate,
	persistent = true, receipts = 200 }
local period = count / rate

-- The RabbitMQ node A's bridge uses dies and comes back.
wait(period * 0.2)
local node = a:bridge("to-cluster").node
local victim
for i, h in ipairs(list) do if h == node then victim = i end end
expect(victim, "A's bridge is connected to one of the nodes (" .. tostring(node) .. ")")
print(string.format("killing RabbitMQ node %d (%s) at %.1f s", victim, node, now()))
sh(ctl .. " kill " .. dir .. " " .. victim)
wait(period * 0.1)
print(string.format("starting RabbitMQ node %d again at %.1f s", victim, now()))
sh(ctl .. " start-node " .. dir .. " " .. victim)

-- Then mqbroker A.
wait(period * 0.2)
print(string.format("killing mqbroker A at %.1f s (%d posts acknowledged so far)", now(), p.acked))
a:kill()
wait(0.5)
a:restart()
print(string.format("mqbroker A back at %.1f s", now()))

expect(wait_for(function() return os.execute("bash -c 'exec 3<>/dev/tcp/" ..
	list[victim]:gsub(":", "/") .. "' 2>/dev/null") end, 120), "RabbitMQ node " .. victim .. " came back")
expect(wait_for(function() return p.done end, period + 120), "the producers finished: " .. p.error)
expect(wait_for(function() return (at_least_once(p, c, { acked = true })) end, 300),
	"B's consumers caught up: " .. select(2, at_least_once(p, c, { acked = true })))
expect(at_least_once(p, c, { acked = true }))

local ra, rb, rep = a:bridge("to-cluster"), b:bridge("from-cluster"), report()
print(string.format("A receipted %d of %d posts (%d failed with the kill: never receipted, so not owed); " ..
	"B's consumers processed %d: 0 lost, %d duplicates", rep.acked, rep.sent, rep.failed, rep.received,
	rep.duplicated))
print(string.format("bridge out (since A's restart): forwarded %d, acknowledged %d, redelivered %d, failed %d, " ..
	"connects %d", ra.forwarded, ra.acknowledged, ra.redelivered, ra.failed, ra.connects))
print(string.format("bridge in: published %d, confirmed %d, duplicates dropped %d, redelivered %d, connects %d",
	rb.forwarded, rb.acknowledged, rb.duplicates, rb.redelivered, rb.connects))
