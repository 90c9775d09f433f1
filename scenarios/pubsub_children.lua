-- pubsub_children.lua: a pubsub copies each message into every child
-- queue attached at the time, and children come and go while messages
-- flow.
--
-- /pubsub/jobs starts with one child, /queue/jobs.a. A producer sends
-- 1,000 messages/s for 2 s, with a receipt for each (so that it knows
-- which messages the broker had taken at any moment). After 0.5 s
-- /queue/jobs.b is attached; after 1.2 s /queue/jobs.a is detached.
--   - a has every message the broker took before the detach, and none
--     posted after it;
--   - b has every message posted after the attach, and none the broker
--     took before it;
--   - neither has a duplicate, and a SUBSCRIBE to the pubsub itself is
--     refused.

local b = broker{}
local function ok(cmd)
	local r = b:admin(cmd)
	expect(r.ok, cmd .. ": " .. r.message)
	return r
end
ok("create pubsub /pubsub/jobs")
ok("attach /pubsub/jobs /queue/jobs.a")

local a = consumers{ broker = b, destination = "/queue/jobs.a" }
local bq = consumers{ broker = b, destination = "/queue/jobs.b" }
expect(wait_for(function() return a.ready == 1 and bq.ready == 1 end, 10), "consumers subscribed")

-- One connection: its receipts come back in order, so `acked` is a prefix.
local p = producers{ broker = b, destination = "/pubsub/jobs", count = 2000, rate = 1000, receipts = 50 }

sleep(500)
local acked_before_attach, sent_before_attach = p.acked, p.sent
ok("attach /pubsub/jobs /queue/jobs.b")
expect(ok("show /pubsub/jobs").data.children == 2, "two children attached")

sleep(700)
local acked_before_detach, sent_before_detach = p.acked, p.sent
ok("detach /pubsub/jobs /queue/jobs.a")

expect(run{ p, timeout = 30 })
expect(p.acked == 2000, "the broker acknowledged " .. p.acked .. " of 2000")
expect(wait_for(function()
	return received_between(a, p, 1, sent_before_detach) >= acked_before_detach and
		received_between(bq, p, sent_before_attach + 1, 2000) == 2000 - sent_before_attach
end, 10), "the children received what they were owed")

-- a: everything the broker had before the detach; nothing posted after.
local a_got = received_between(a, p, 1, acked_before_detach)
expect(a_got == acked_before_detach, string.format("child a has %d of the %d messages taken before the detach",
	a_got, acked_before_detach))
local late = received_between(a, p, sent_before_detach + 1, math.huge)
expect(late == 0, late .. " messages posted after the detach reached child a")

-- b: everything posted after the attach; nothing the broker had before.
local b_got = received_between(bq, p, sent_before_attach + 1, math.huge)
expect(b_got == 2000 - sent_before_attach, string.format("child b has %d of the %d messages posted after the attach",
	b_got, 2000 - sent_before_attach))
local early = received_between(bq, p, 1, acked_before_attach)
expect(early == 0, early .. " messages taken before the attach reached child b")

local r = report()
expect(r.duplicated == 0, r.duplicated .. " duplicates")
expect(a.received + bq.received == received_between(a, p, 1, math.huge) + received_between(bq, p, 1, math.huge),
	"no message was processed twice by a child")

-- A pubsub is not a queue: subscribing to it is an error.
local wrong = consumers{ broker = b, destination = "/pubsub/jobs", reconnect = false }
expect(wait_for(function() return wrong.closed == 1 end, 5), "a SUBSCRIBE to the pubsub was not refused")
expect(wrong.errors >= 1, "no ERROR for a SUBSCRIBE to a pubsub")
print(string.format("child a: %d messages (1..%d), child b: %d messages (%d..2000)", a.received, acked_before_detach,
	bq.received, sent_before_attach + 1))
