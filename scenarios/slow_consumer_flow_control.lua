-- slow_consumer_flow_control.lua: flow control keeps a slow consumer from
-- being buried. A queue gives a consumer at most max_unconfirmed messages
-- it has not acknowledged yet; the rest go to consumers with room, or
-- wait in the queue.
--
-- A fast consumer (at most 50 unacknowledged) and a slow one (20 ms per
-- message, at most 5) share a queue fed at 2,000 messages/s for 1.5 s.
-- Midway the fast one stalls for half a second: the queue holds what
-- arrives meanwhile instead of pushing it at either consumer. Throughout,
-- the broker never has more than 5 messages out at the slow consumer, nor
-- more than 50 at the stalled one; in the end every message was processed
-- exactly once, most by the fast consumer.

local b = broker{}
b:admin("create queue /queue/jobs")

local fast = consumers{ broker = b, destination = "/queue/jobs", ack = "client-individual", max_unconfirmed = 50 }
local slow = consumers{ broker = b, destination = "/queue/jobs", ack = "client-individual", max_unconfirmed = 5,
	delay = 20 }
expect(wait_for(function() return fast.ready == 1 and slow.ready == 1 end, 10), "consumers subscribed")
local slow_id = slow:client_ids()[1]

-- The broker's view of the slow consumer's subscription.
local function slow_unacked()
	for _, s in ipairs(b:admin("list subscriptions").data) do
		if tostring(s.client) == slow_id then
			return s.unacked, s.max_unacked
		end
	end
	error("no subscription of client " .. slow_id .. " on the broker")
end

local p = producers{ broker = b, destination = "/queue/jobs", count = 3000, rate = 2000 }

local peak_depth = 0
for i = 1, 15 do
	sleep(100)
	if i == 5 then
		stall(fast, 0.5)
	end
	local unacked, max = slow_unacked()
	expect(max == 5, "the broker took max-unconfirmed-messages as " .. tostring(max) .. ", expected 5")
	expect(unacked <= 5, "the broker had " .. unacked .. " messages out at the slow consumer, limit 5")
	peak_depth = math.max(peak_depth, b:admin("show /queue/jobs").data.depth)
end

expect(run{ p, fast, slow, timeout = 30 })
expect(exactly_once(p, { fast, slow }))
expect(slow.peak_unconfirmed <= 5, "the slow consumer held " .. slow.peak_unconfirmed .. " at once, limit 5")
expect(fast.peak_unconfirmed <= 50, "the fast consumer held " .. fast.peak_unconfirmed .. " at once, limit 50")
expect(peak_depth >= 100, "while the fast consumer stalled the queue held at most " .. peak_depth ..
	" messages; flow control should have kept hundreds there")
expect(slow.received < 300, "the slow consumer processed " .. slow.received .. ", more than 20 ms each allows")
expect(fast.received > 2500, "the fast consumer processed only " .. fast.received .. " of 3000")
print(string.format("fast %d, slow %d, queue depth at most %d during the stall", fast.received, slow.received,
	peak_depth))
