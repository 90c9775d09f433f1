-- queue_round_robin.lua: a queue shares its messages among its consumers,
-- each message to exactly one of them, in turn.
--
-- Three consumers subscribe first (a queue gives everything it holds to
-- its first subscriber), two producers send 6,000 messages, and then:
-- every message arrived exactly once, in order per producer on each
-- connection; each consumer took close to a third; the broker counted the
-- same and holds nothing.

local b = broker{}
b:admin("create queue /queue/rr")

local c = consumers{ broker = b, destination = "/queue/rr", n = 3, ack = "client-individual" }
expect(wait_for(function() return c.ready == 3 end, 10), "3 consumers subscribed, got " .. c.ready)

local p = producers{ broker = b, destination = "/queue/rr", n = 2, count = 6000 }
expect(run{ p, c, timeout = 30 })

expect(exactly_once(p, c))
expect(in_order(p, c))

-- Round robin: each of the three took its share, give or take a little
-- (the broker skips a consumer whose output is full).
for i, n in ipairs(c:received_by()) do
	expect(n >= 1800 and n <= 2200, string.format("consumer %d took %d of 6000 messages, expected about 2000", i, n))
end

local q = b:admin("show /queue/rr")
expect(q.ok, q.message)
expect(q.data.messages_in == 6000, "the broker counted " .. q.data.messages_in .. " messages in, expected 6000")
expect(q.data.messages_out == 6000, "the broker counted " .. q.data.messages_out .. " messages out, expected 6000")
expect(wait_for(function() return b:admin("show /queue/rr").data.unacked == 0 end, 5), "acknowledgements settled")
expect(b:admin("show /queue/rr").data.depth == 0, "the queue is empty")
