-- hold_until_subscribe.lua: a queue holds what it is sent until someone
-- subscribes, then delivers all of it, in order, to that first subscriber.
--
-- 2,000 messages go to a queue nobody reads; the broker reports them as
-- its depth. A consumer subscribes and receives every one, exactly once
-- and in order, with none marked redelivered; the queue is empty after.

local b = broker{}

local p = fill(b, "/queue/held", 2000)
local q = b:admin("show /queue/held")
expect(q.ok, q.message)
expect(q.data.depth == 2000, "the queue holds " .. q.data.depth .. " messages, expected 2000")
expect(q.data.consumers == 0, "nobody subscribed yet")

sleep(200)	-- held means held: nothing leaks out while nobody asks
expect(b:admin("show /queue/held").data.depth == 2000, "the queue still holds all 2000")

local c = consumers{ broker = b, destination = "/queue/held", ack = "client" }
expect(run{ p, c, timeout = 30 })
expect(exactly_once(p, c))
expect(in_order(p, c))
expect(c.redelivered == 0, c.redelivered .. " messages came marked redelivered")
expect(wait_for(function() return b:admin("show /queue/held").data.unacked == 0 end, 5), "acknowledgements settled")
expect(b:admin("show /queue/held").data.depth == 0, "the queue is empty")
