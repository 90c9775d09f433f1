-- /etc/mqbroker/broker.lua: the configuration of mqbroker.service.
--
-- /usr/share/mqbroker/lua/broker.lua lists every option with its default
-- and what it does, and mqbroker.lua(5) is the reference: copy here what
-- you need. `systemctl reload mqbroker` applies a change (the journal,
-- `journalctl -u mqbroker`, names those that wait for a restart), and a
-- file that does not load leaves the running configuration in force.
--
-- The unit sets the data directory (/var/lib/mqbroker), the control socket
-- (/run/mqbroker/mqbroker.sock) and its group (mqbroker-admin) on the
-- command line, which wins over this file. require() finds modules in
-- /etc/mqbroker/lua/, where lib/ holds the shipped ones.
--
-- This file may hold passcodes: keep it mode 0640, group mqbroker.

-- STOMP on every address, port 61613 exactly: start-up fails when it is
-- taken, rather than moving to another port clients do not know.
listeners = {
	{ port = 61613 },
	-- { port = 61614, tls = true },
}

-- The unit allows 16384 open files (LimitNOFILE): room for 10,000 clients.
max_connections = 10000

-- Warnings as well as errors, in the journal.
log_level = 2

-- users = {
-- 	{ login = "operator", passcode = "change-me", admin = true },
-- }
