-- content_routing.lua: route on a header.
--
-- Producers send every job to /queue/jobs with a "priority" header; the
-- broker sorts them into one queue per priority, so that workers for
-- urgent work subscribe to /queue/jobs.high alone. Jobs with no priority,
-- or one nobody expected, land in /queue/jobs.normal rather than being
-- lost. A "site" header that names a known site routes to that site's
-- queue first, whatever the priority.
--
-- Try it:  mqbroker -f lua/examples/content_routing.lua

destinations = {
	{ "/queue/jobs.high", "queue", persistent = true },
	{ "/queue/jobs.normal", "queue", persistent = true },
	{ "/queue/jobs.low", "queue", max_length = 100000, overflow = "drop-oldest" },
}

-- Locals, not globals: only options, rule tables and functions may be global.
local by_priority = {
	high = "/queue/jobs.high",
	normal = "/queue/jobs.normal",
	low = "/queue/jobs.low",
}
local sites = { cern = true, in2p3 = true, pic = true }

function route(msg)
	-- Only jobs are sorted; everything else goes where it was sent.
	if msg.destination ~= "/queue/jobs" then
		return
	end
	local site = msg.headers.site
	if site and sites[site] then
		msg.headers["x-routed-by"] = "site"
		return "/queue/jobs.site." .. site
	end
	-- Tell consumers why a message is where it is.
	msg.headers["x-routed-by"] = "priority"
	return by_priority[msg.headers.priority or "normal"] or "/queue/jobs.normal"
end
