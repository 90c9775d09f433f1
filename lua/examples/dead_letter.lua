-- dead_letter.lua: messages a rule rejects go to a dead-letter queue.
--
-- Orders must be JSON objects with an order-id header. Instead of
-- refusing a bad one (error("...") would send the producer an ERROR and
-- lose the message), route() sends it to /queue/DLQ.orders.invalid with
-- headers saying where it was going and why, so that an operator can
-- look at it, fix it and send it on again.
--
-- The body is only read for /queue/orders: other messages never have
-- theirs copied into Lua.
--
-- Try it:  mqbroker -f lua/examples/dead_letter.lua

local DLQ = "/queue/DLQ.orders.invalid"

destinations = {
	-- Messages that fail delivery max_deliveries times go to the queue's
	-- own dead-letter queue; that is the broker's, not a rule's, doing.
	{ "/queue/orders", "queue", persistent = true, max_deliveries = 5,
	  dead_letter = "/queue/DLQ.orders" },
	{ "/queue/DLQ.orders", "queue", persistent = true },
	{ DLQ, "queue", persistent = true, max_length = 100000 },
}

-- Why the message is no good, or nil when it is fine.
local function problem(msg)
	if not msg.headers["order-id"] then
		return "missing order-id header"
	end
	local ctype = msg.headers["content-type"]
	if ctype and not ctype:find("^application/json") then
		return "content-type is " .. ctype .. ", expected application/json"
	end
	local body = msg.body
	if #body == 0 then
		return "empty body"
	end
	if not body:find("^%s*{") or not body:find("}%s*$") then
		return "body is not a JSON object"
	end
	return nil
end

function route(msg)
	if msg.destination ~= "/queue/orders" then
		return
	end
	local why = problem(msg)
	if not why then
		return
	end
	msg.headers["x-dead-letter-reason"] = why
	msg.headers["x-original-destination"] = msg.destination
	msg.headers["x-original-sender"] = msg.login or "(anonymous)"
	return DLQ
end
