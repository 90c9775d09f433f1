-- kill9_persistent.lua: kill -9 loses no persistent message whose RECEIPT
-- arrived. A RECEIPT for a persistent SEND means the message is on disk;
-- a broker killed with SIGKILL and started again must deliver every such
-- message, at least once.
--
-- Needs the journal (issue 5). Without it the broker keeps nothing over a
-- restart and this scenario fails, which is why ci/scenarios.list leaves
-- it out until the journal is merged.
--
-- Phase 1: 5,000 persistent messages with receipts wait in a queue when
-- the broker is killed, and must all be there after the restart.
-- Phase 2: a producer (receipts, window 100) and a consumer
-- (client-individual) run at 5,000 messages/s while the broker is killed
-- and restarted under them; they reconnect by themselves. Every message
-- whose RECEIPT arrived, in both phases, reaches the consumers at least
-- once; some come twice (delivered before the kill, not acknowledged in
-- time), marked redelivered.

local b = broker{}
b:admin("create queue /queue/durable persistent")

-- Phase 1: a backlog on disk.
local backlog = producers{ broker = b, destination = "/queue/durable", count = 5000, persistent = true,
	receipts = 100 }
expect(wait_for(function() return backlog.done end, 30), "the backlog was sent")
expect(backlog.acked == 5000, "the broker acknowledged " .. backlog.acked .. " of 5000")
b:kill()
b:restart()
local q = b:admin("show /queue/durable")
expect(q.ok, "after kill -9 and a restart: " .. q.message)
expect(q.data.depth == 5000, "after kill -9 and a restart the queue holds " .. q.data.depth .. " of 5000 messages")

-- Phase 2: a kill under load.
local c = consumers{ broker = b, destination = "/queue/durable", ack = "client-individual", max_unconfirmed = 200 }
local p = producers{ broker = b, destination = "/queue/durable", count = 15000, rate = 5000, persistent = true,
	receipts = 100 }
sleep(1000)
expect(p.acked > 0 and c.received > 0, "traffic flowed before the kill")
b:kill()
sleep(300)	-- the clients notice and start reconnecting
b:restart()
expect(wait_for(function() return p.done end, 60), "the producer finished after the restart: " .. p.error)
expect(wait_for(function()
	return (at_least_once({ backlog, p }, c, { acked = true }))
end, 60), "the consumer caught up")

expect(at_least_once({ backlog, p }, c, { acked = true }))
expect(c.reconnects >= 1 and p.reconnects >= 1, "both reconnected after the restart")
local r = report()
print(string.format("%d acknowledged posts, %d failed with the kill, %d processed, %d redelivered, %d duplicates",
	r.acked, r.failed, r.received, r.redelivered, r.duplicated))
