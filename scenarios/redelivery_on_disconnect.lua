-- redelivery_on_disconnect.lua: what a consumer received but never
-- acknowledged goes back to the queue when its connection drops, and the
-- next consumer gets it, marked redelivered. Nothing is lost.
--
-- 100 messages wait in a queue. A consumer limited to 10 unacknowledged
-- messages takes 10 and drops its connection without acknowledging any
-- (a crash). A second consumer then receives all 100, the first 10
-- marked redelivered. The broker counts 10 redeliveries.

local b = broker{}

local p = fill(b, "/queue/work", 100)

local crash = consumers{ broker = b, destination = "/queue/work", ack = "client-individual",
	max_unconfirmed = 10, disconnect_after = 10 }
expect(wait_for(function() return crash.closed == 1 end, 10), "the first consumer dropped its connection")
expect(crash.delivered == 10, "the first consumer got " .. crash.delivered .. " messages, expected 10")
expect(crash.received == 0, "the first consumer confirmed nothing")
expect(crash.abandoned == 10, crash.abandoned .. " messages left unacknowledged, expected 10")

local second = consumers{ broker = b, destination = "/queue/work", ack = "client-individual" }
expect(run{ p, second, timeout = 30 })
-- `crash` and `second` read the same queue: checked together, each message
-- was processed once (the crashed consumer processed none).
expect(exactly_once(p, { crash, second }))
expect(second.redelivered == 10, second.redelivered .. " messages came marked redelivered, expected 10")
expect(second.received == 100, "the second consumer processed " .. second.received .. " of 100")
expect(b:stats().redelivered == 10, "the broker counted " .. b:stats().redelivered .. " redeliveries, expected 10")
