-- lib/acl.lua: access lists for authorize(), as a module.
--
-- require("lib.acl").new(lists) returns a function (login, action,
-- destination) -> true, or false and a reason. lists maps a login to a
-- table of action -> list of Lua patterns that the destination must match.
-- A login that is not listed may do nothing.

local M = {}

function M.new(lists)
	return function(login, action, destination)
		local mine = lists[login or ""]
		if not mine then
			return false, "no access list for " .. (login or "anonymous users")
		end
		for _, pattern in ipairs(mine[action] or {}) do
			if destination and destination:find(pattern) then
				return true
			end
		end
		return false, (login .. " may not " .. action .. " " .. (destination or ""))
	end
end

return M
