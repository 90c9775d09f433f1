-- authorize.lua: who may connect, send, subscribe and run admin commands.
--
-- Anything from the loopback address is trusted (the broker's default
-- without an authorize() too). From elsewhere a client must log in: with a
-- passcode checked against users, or with a client certificate when
-- tls.ca_chains is set, whose subject CN is then the login (the way DIRAC
-- authenticates). Admin commands need a user marked admin. Beyond that, an
-- access list per login says which destinations it may use; the list is
-- built by a helper module, lua/lib/acl.lua, to show require().
--
-- Try it:  mqbroker -f lua/examples/authorize.lua

users = {
	{ login = "operator", passcode = "change-me", admin = true },
	{ login = "pilot", passcode = "change-me-too" },
}

local acl = require("lib.acl").new({
	-- login (or certificate CN) = { action = { Lua patterns of destinations } }
	pilot = {
		send = { "^/queue/jobs%.", "^/queue/results$" },
		subscribe = { "^/queue/jobs%." },
	},
	["dirac-agent.example.org"] = {
		send = { "^/queue/" , "^/topic/dirac%." },
		subscribe = { "^/queue/", "^/topic/dirac%." },
	},
	operator = { send = { "." }, subscribe = { "." } },
})

function authorize(login, action, destination, info)
	if info.loopback then
		return true
	end
	if not info.authenticated then
		return false, "log in first (login and passcode, or a client certificate)"
	end
	if action == "admin" then
		return info.admin_user, "admin commands need an admin user"
	end
	if action == "connect" then
		return true
	end
	return acl(login, action, destination)
end

-- Keep an audit trail of who came and went, in the broker's log.
function on_event(name, fields)
	if name == "client-connected" or name == "client-disconnected" then
		local login = fields.login ~= "" and fields.login or "-"
		print(name, login, fields.peer)
	end
end
