-- bridge_failover.lua: a bridge loses no receipted message whatever its
-- link does (docs/bridges.md). Broker A forwards /queue/out to broker B's
-- /queue/in through a link the scenario controls; producers send to A
-- (persistent, receipts), consumers read B. Meanwhile the link is cut
-- (silent: only heart-beats notice) and restored, its connections are
-- reset, the bridge is paused and resumed, and B is killed with SIGKILL
-- and started again. Every message A receipted reaches B's consumers at
-- least once; B's dedup window drops the repeats the bridge had to send.
--
-- The same moves rehearse a failover by hand from mqsh:
--   mqsh run scenarios/bridge_failover.lua

local b = broker{ config = 'destinations = { { "/queue/in", persistent = true, dedup_window = "10m" } }' }
local a = broker{ config = 'destinations = { { "/queue/out", persistent = true } }' }
local l = link{ to = b }
local added = a:admin("bridge add ab direction=out from=/queue/out to=/queue/in hosts=" .. l.address ..
	" window=200 heartbeat=500ms reconnect-min=50ms reconnect-max=1s stall-timeout=30s")
expect(added.ok, "bridge add: " .. added.message)
expect(wait_for(function() return a:bridge("ab").state == "running" end, 10), "the bridge connected")

local c = consumers{ broker = b, destination = "/queue/in", ack = "client-individual", max_unconfirmed = 500 }
local p = producers{ broker = a, destination = "/queue/out", count = 20000, rate = 4000, persistent = true,
	receipts = 100 }

-- A silent link: the remote stops answering, heart-beats find out.
sleep(800)
expect(a:bridge("ab").forwarded > 0, "traffic crossed before the cut")
l:cut()
expect(wait_for(function() return a:bridge("ab").state ~= "running" end, 10),
	"the bridge noticed the silent link: " .. a:bridge("ab").state)
l:restore()
expect(wait_for(function() return a:bridge("ab").state == "running" end, 15), "the bridge came back")

-- A reset: every connection through the link fails at once.
sleep(500)
expect(l:drop() >= 1, "a connection was reset")
expect(wait_for(function() return a:bridge("ab").state == "running" end, 15), "the bridge came back after a reset")

-- Paused by an operator: nothing moves, the backlog waits in A.
expect(a:admin("bridge pause ab").ok, "pause")
sleep(500)
local held = a:bridge("ab")
expect(held.state == "paused" and held.pending == 0, "paused: " .. held.state .. ", " .. held.pending .. " in flight")
expect(a:admin("bridge resume ab").ok, "resume")

-- The remote broker dies and comes back.
sleep(500)
b:kill()
sleep(300)
b:restart()

expect(wait_for(function() return p.done end, 60), "the producers finished: " .. p.error)
expect(wait_for(function() return (at_least_once(p, c, { acked = true })) end, 60), "B's consumers caught up")
expect(at_least_once(p, c, { acked = true }))
local r = a:bridge("ab")
expect(r.connects >= 4, "the bridge connected " .. r.connects .. " times (cut, reset, kill)")
local rep = report()
print(string.format("bridge: %d forwarded, %d acknowledged, %d redelivered, %d failed; consumers: %d processed, "
	.. "%d duplicates; B dropped %d repeats", r.forwarded, r.acknowledged, r.redelivered, r.failed, rep.received,
	rep.duplicated, b:stats().duplicates))
