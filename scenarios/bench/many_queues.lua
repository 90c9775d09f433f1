-- many_queues.lua: many queues, each with its own producer and consumer
-- connection (issue 18's "many connections" figure: 1,000 queues, 2,000
-- connections, 100 B). Checks that no consumer was starved: each received
-- at least half the median share.
--
--   MQB_HOST, MQB_PORT   the broker (attach{})
--   MQB_QUEUES           queues (1000)
--   MQB_SIZE             body bytes (100)
--   MQB_DURATION         seconds of sending (5)

local function env(name, default)
	local v = os.getenv(name)
	if v == nil or v == "" then
		return default
	end
	return v
end

local b = attach{ host = env("MQB_HOST", "127.0.0.1"), port = tonumber(env("MQB_PORT", "61613")) }
local n = tonumber(env("MQB_QUEUES", "1000"))
local tag = tostring(os.time())

local cs, ps, all = {}, {}, {}
for i = 1, n do
	cs[i] = consumers{ broker = b, destination = string.format("/queue/many.%s.%d", tag, i) }
end
expect(wait_for(function()
	for i = 1, n do
		if cs[i].ready ~= 1 then return false end
	end
	return true
end, 120), "consumers subscribed")
for i = 1, n do
	ps[i] = producers{ broker = b, destination = string.format("/queue/many.%s.%d", tag, i),
	                   duration = tonumber(env("MQB_DURATION", "5")), size = tonumber(env("MQB_SIZE", "100")) }
	all[#all + 1] = ps[i]
end
all.timeout = 600
expect(run(all))
expect(wait_for(function()
	for i = 1, n do
		if cs[i].received < ps[i].sent then return false end
	end
	return true
end, 120), "every message delivered")

local got = {}
for i = 1, n do
	got[i] = cs[i].received
end
table.sort(got)
local median = got[(n + 1) // 2]
expect(got[1] * 2 >= median, string.format("a consumer was starved: %d messages against a median of %d", got[1], median))
