-- admin_disconnect.lua: an administrator disconnects a consumer while
-- messages flow. The consumer gets an ERROR and loses its connection; its
-- unacknowledged messages go back to the queue and are delivered again;
-- no message is lost.
--
-- Two consumers (2 ms per message, at most 20 unacknowledged each) share
-- a queue fed at 1,500 messages/s, faster than they can go, so each always
-- holds messages it has not acknowledged. After half a second,
-- `disconnect` on the control socket closes the first one; it reconnects
-- (as a supervised worker would) and the traffic goes on. Every message
-- arrives at least once: those the disconnected consumer held come again,
-- marked redelivered. A message whose ACK was on the wire when the
-- connection closed may be processed twice, so duplicates are allowed,
-- but no more than the consumer could hold.

local b = broker{}
b:admin("create queue /queue/orders")

local c = consumers{ broker = b, destination = "/queue/orders", n = 2, ack = "client-individual",
	max_unconfirmed = 20, delay = 2 }
expect(wait_for(function() return c.ready == 2 end, 10), "consumers subscribed")
local p = producers{ broker = b, destination = "/queue/orders", count = 2000, rate = 1500 }

sleep(500)
expect(c.received > 0 and c.received < 2000, "traffic is flowing (" .. c.received .. " processed)")
local victim = c:client_ids()[1]
local reply = b:admin("disconnect " .. victim .. " scenario admin_disconnect")
expect(reply.ok, "disconnect " .. victim .. ": " .. reply.message)
expect(wait_for(function() return c.reconnects >= 1 and c.ready == 2 end, 10),
	"the disconnected consumer came back (reconnects " .. c.reconnects .. ")")
expect(c.error:find("disconnected by an administrator", 1, true),
	"the consumer was told why: '" .. c.error .. "'")

expect(run{ p, c, timeout = 30 })
expect(at_least_once(p, c))
local r = report()
expect(c.abandoned >= 1, "the disconnected consumer held nothing unacknowledged")
expect(c.redelivered >= 1, "nothing came back redelivered")
expect(r.duplicated <= 20, r.duplicated .. " messages processed twice, more than one consumer can hold (20)")
local s = b:stats()
expect(s.redelivered >= 1, "the broker counted no redelivery")
expect(wait_for(function() return b:admin("show /queue/orders").data.depth == 0 end, 5), "the queue drained")
