-- fanout.lua: one message, several queues.
--
-- Two ways to copy a message into several queues:
--
-- 1. A pubsub destination. The broker replicates each message into the
--    pubsub's child queues itself; no Lua runs per message. A types rule
--    makes every /events/<name> a pubsub with the same children.
--
-- 2. route() returning a list. Useful when the set of queues depends on
--    the message: here every order goes to its own queue and to the audit
--    queue, and big orders to billing review as well.
--
-- The body is stored once and shared by every queue either way.
--
-- Try it:  mqbroker -f lua/examples/fanout.lua

destinations = {
	{ "/queue/audit", "queue", persistent = true },
	{ "/queue/archive", "queue", persistent = true, ttl = "7d" },
	{ "/queue/billing.review", "queue", persistent = true },
	{ "/queue/orders", "queue", persistent = true },
	{ "/pubsub/accounting", "pubsub", children = { "/queue/audit", "/queue/archive" } },
}

types = {
	{ "^/events/[a-z]+$", "pubsub", children = { "/queue/audit", "/queue/archive" } },
}

function route(msg)
	if msg.destination ~= "/queue/orders" then
		return
	end
	local targets = { "/queue/orders", "/queue/audit" }
	local amount = tonumber(msg.headers.amount or "")
	if amount and amount >= 10000 then
		targets[#targets + 1] = "/queue/billing.review"
	end
	return targets
end
