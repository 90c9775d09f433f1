-- topic_fanout.lua: a topic gives every message to every subscriber, and
-- nothing to one who subscribes after it was sent.
--
-- Five subscribers (one fan-out group: each connection should get every
-- message) and a second, separate subscriber; one producer sends 3,000
-- messages; each of the six receives all of them, in order. A subscriber
-- that arrives afterwards receives nothing, and the broker's own counters
-- agree: 3,000 in, 18,000 out.

local b = broker{}

local subs = consumers{ broker = b, destination = "/topic/news", n = 5 }
local solo = consumers{ broker = b, destination = "/topic/news" }
expect(wait_for(function() return subs.ready == 5 and solo.ready == 1 end, 10), "subscribers ready")

local before = b:stats()
local p = producers{ broker = b, destination = "/topic/news", count = 3000 }
expect(run{ p, subs, solo, timeout = 30 })

-- Each connection of `subs` got each message once: 5 copies each.
expect(exactly_once(p, subs))
expect(in_order(p, subs))
expect(exactly_once(p, solo))
expect(subs.received == 15000, "the 5 subscribers received " .. subs.received .. ", expected 15000")
for i, n in ipairs(subs:received_by()) do
	expect(n == 3000, string.format("subscriber %d received %d of 3000", i, n))
end

-- Too late: a topic keeps nothing.
local late = consumers{ broker = b, destination = "/topic/news" }
expect(wait_for(function() return late.ready == 1 end, 10), "the late subscriber subscribed")
sleep(200)
expect(nothing_delivered(late))

local after = b:stats()
expect(after.messages_in - before.messages_in == 3000,
	"the broker counted " .. (after.messages_in - before.messages_in) .. " messages in, expected 3000")
expect(after.messages_out - before.messages_out == 18000,
	"the broker counted " .. (after.messages_out - before.messages_out) .. " deliveries, expected 18000")
expect(after.dropped == before.dropped, "the broker dropped " .. (after.dropped - before.dropped) .. " messages")
