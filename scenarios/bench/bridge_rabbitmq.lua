-- bridge_rabbitmq.lua: an outbound bridge to one RabbitMQ node beside the
-- same load generator sending to that node directly (issue 16's figure:
-- the bridge must reach 80% of the direct rate). Run by ci/bench-bridge,
-- which starts the node (ci/rabbitmq-cluster) and declares the quorum
-- queue `bench`; docs/benchmarks.md has the figures.
--
--   direct   one producer connection, persistent messages, a window of
--            MQB_WINDOW receipts, to RabbitMQ's /amq/queue/bench
--   bridge   the same messages first stored in mqbroker A (persistent
--            queue, bridge paused), then the bridge resumed: one session,
--            a window of MQB_WINDOW, to the same queue; timed until the
--            last RECEIPT came back to the bridge
--
--   MQ_RABBIT_HOSTS  the node's STOMP address; MQ_RABBIT_DIR, MQ_RABBIT_CTL
--   MQB_COUNT        messages per run (100000)
--   MQB_WINDOW       receipts in flight (1000)
--   MQB_SIZE         body bytes (100)
--   MQB_FSYNC        mqbroker A's fsync policy (always)

local function env(name, default)
	local v = os.getenv(name)
	if v == nil or v == "" then return default end
	return v
end
local hosts = assert(os.getenv("MQ_RABBIT_HOSTS"), "MQ_RABBIT_HOSTS")
local dir = assert(os.getenv("MQ_RABBIT_DIR"), "MQ_RABBIT_DIR")
local ctl = env("MQ_RABBIT_CTL", "ci/rabbitmq-cluster")
local count = tonumber(env("MQB_COUNT", "100000"))
local window = tonumber(env("MQB_WINDOW", "1000"))
local size = tonumber(env("MQB_SIZE", "100"))
local fsync = env("MQB_FSYNC", "always")
local host, port = hosts:match("^([^:,]+):(%d+)")

local function purge()
	expect(os.execute(ctl .. " ctl " .. dir .. " 1 purge_queue bench >/dev/null 2>&1"), "purge_queue bench")
end

local r = attach{ host = host, port = tonumber(port), vhost = "/", login = "guest", passcode = "guest" }

-- Direct: the load generator to RabbitMQ, msgs/s acknowledged.
local function direct_run()
	purge()
	local t0 = now()
	local p = producers{ broker = r, destination = "/amq/queue/bench", count = count, size = size,
		persistent = true, receipts = window }
	expect(wait_for(function() return p.done end, 600), "the direct run finished")
	expect(p.acked == count, "RabbitMQ acknowledged " .. p.acked .. " of " .. count)
	local rate = p.acked / (now() - t0)
	purge()
	return rate
end

-- Through the bridge: A holds the messages, then the bridge sends them.
local a = broker{ config = 'fsync = "' .. fsync .. '"\n' .. [[
destinations = { { "/queue/out", persistent = true } }
bridges = { { name = "bench", direction = "out", from = "/queue/out", to = "/amq/queue/bench",
	hosts = "]] .. hosts .. [[", login = "guest", passcode = "guest", window = ]] .. window .. [[, paused = true } }
]] }
local function bridge_run()
	purge()
	local fillp = producers{ broker = a, destination = "/queue/out", count = count, size = size, persistent = true,
		receipts = window }
	expect(wait_for(function() return fillp.done end, 600), "A was filled")
	expect(a:bridge("bench").lag_messages == count, "A holds the messages")
	local before = a:bridge("bench").acknowledged
	local t0 = now()
	expect(a:admin("bridge resume bench").ok, "resume")
	expect(wait_for(function() return a:bridge("bench").acknowledged - before >= count end, 600),
		"the bridge forwarded them")
	local rate = count / (now() - t0)
	expect(a:admin("bridge pause bench").ok, "pause")
	purge()
	return rate
end

-- Direct, bridge, direct: the machine's drift (RabbitMQ's log compaction,
-- other work) falls on both sides alike.
local d1 = direct_run()
local bridged = bridge_run()
local d2 = direct_run()
local direct = (d1 + d2) / 2
print(string.format("direct: %.0f msgs/s (%.0f, %.0f); bridge: %.0f msgs/s; ratio=%.2f", direct, d1, d2, bridged,
	bridged / direct))
