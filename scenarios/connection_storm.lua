-- connection_storm.lua: thousands of connections open and close, and the
-- broker neither loses a message nor keeps a connection.
--
-- MQ_STORM_CONNECTIONS (default 2,000) producer connections, in waves of
-- at most 1,000 at once, each connect, send one message, and disconnect;
-- two consumers receive every message exactly once. Then 500 consumer
-- connections subscribe and drop abruptly without a word. At the end the
-- broker has only the two consumers left, and counted every connection.
-- ci/scenarios-long runs it with 20,000.

local total = tonumber(os.getenv("MQ_STORM_CONNECTIONS") or "2000")
local wave = 1000
local b = broker{ args = { "-n", tostring(wave + 600) } }

local c = consumers{ broker = b, destination = "/queue/storm", n = 2 }
expect(wait_for(function() return c.ready == 2 end, 10), "consumers subscribed")
local before = b:stats()

local waves, opened = {}, 0
while opened < total do
	local n = math.min(wave, total - opened)
	-- count = n over n connections: one message each, then DISCONNECT.
	local p = producers{ broker = b, destination = "/queue/storm", n = n, count = n }
	expect(wait_for(function() return p.closed == n end, 60),
		string.format("wave %d: %d of %d connections done (%s)", #waves + 1, p.closed, n, p.error))
	waves[#waves + 1] = p
	opened = opened + n
end
expect(run{ waves, c, timeout = 60 })
expect(exactly_once(waves, c))

-- Connections that vanish without DISCONNECT.
local ghosts = consumers{ broker = b, destination = "/queue/storm.ghosts", n = 500, reconnect = false }
expect(wait_for(function() return ghosts.ready == 500 end, 30), ghosts.ready .. " of 500 ghosts subscribed")
expect(drop(ghosts, 500) == 500, "dropped 500 connections")

expect(wait_for(function() return b:stats().connections == 2 end, 15),
	"the broker still has " .. b:stats().connections .. " connections, expected the 2 consumers")
local after = b:stats()
expect(after.connections_total - before.connections_total == total + 500,
	string.format("the broker counted %d connections, expected %d", after.connections_total - before.connections_total,
		total + 500))
expect(after.connections_refused == 0, after.connections_refused .. " connections refused")
print(string.format("%d connections opened and closed", total + 500))
