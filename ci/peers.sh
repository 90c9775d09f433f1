# ci/peers.sh: start and stop the peer brokers the benchmark compares
# mqbroker with, from Debian's packages, on loopback, each in a private
# directory. Sourced by ci/bench; needs `ci/deps --bench` first.
#
#   peer_start rabbitmq PORT DIR     RabbitMQ with rabbitmq_stomp on PORT
#   peer_start activemq PORT DIR     ActiveMQ with a STOMP connector on PORT
#   peer_stop  rabbitmq|activemq DIR
#   peer_pid   rabbitmq|activemq DIR  (the process to measure: beam.smp, java)
#   peer_version rabbitmq|activemq

peer_wait_port() {
	local port=$1 tries=${2:-120}
	while [ "$tries" -gt 0 ]; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.5
		tries=$((tries - 1))
	done
	return 1
}

rabbitmq_env() {
	local dir=$1
	export RABBITMQ_NODENAME="mqbench-$$@localhost"
	export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
	export RABBITMQ_CONFIG_FILE="$dir/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
	export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
	# rabbitmqctl finds the node through the Erlang cookie in $HOME
	export HOME="$dir"
}

peer_start() {
	local kind=$1 port=$2 dir=$3
	mkdir -p "$dir"
	case $kind in
	rabbitmq)
		cat >"$dir/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$((port + 1))
stomp.listeners.tcp.1 = 127.0.0.1:$port
loopback_users = none
log.console = false
log.file.level = warning
CONF
		echo "[rabbitmq_stomp]." >"$dir/enabled_plugins"
		( rabbitmq_env "$dir"; export RABBITMQ_DIST_PORT=$((port + 2))
		  setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/out.log" 2>&1 </dev/null & )
		;;
	activemq)
		mkdir -p "$dir/conf" "$dir/data"
		cp /etc/activemq/instances-available/main/* "$dir/conf/"
		sed -i "s#<transportConnector name=\"openwire\" uri=\"tcp://127.0.0.1:61616\"/>#<transportConnector name=\"stomp\" uri=\"stomp://127.0.0.1:$port\"/>#" \
			"$dir/conf/activemq.xml"
		# A simple command in the background, so that $! is java itself
		# (the CPU and memory figures are read from it) and no shell
		# lingers holding our caller's pipes.
		( cd "$dir" || exit 1
		  setsid java -Xms512M -Xmx512M -Dactivemq.home=/usr/share/activemq \
			-Dactivemq.base="$dir" -Dactivemq.conf="$dir/conf" -Dactivemq.data="$dir/data" \
			-Djava.io.tmpdir="$dir/data" -jar /usr/share/activemq/bin/activemq.jar \
			start "xbean:file:$dir/conf/activemq.xml" >"$dir/out.log" 2>&1 </dev/null &
		  echo $! >"$dir/java.pid" )
		;;
	*) echo "peer_start: unknown peer $kind" >&2; return 2 ;;
	esac
	peer_wait_port "$port" || { echo "peer_start: $kind did not listen on $port; see $dir/out.log" >&2; return 1; }
}

peer_pid() {
	local kind=$1 dir=$2
	case $kind in
	rabbitmq) pgrep -f "beam.*mqbench-$$@localhost" | head -1 ;;
	activemq) cat "$dir/java.pid" ;;
	esac
}

peer_stop() {
	local kind=$1 dir=$2
	case $kind in
	rabbitmq) ( rabbitmq_env "$dir"; /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 ) ;;
	activemq) kill "$(cat "$dir/java.pid")" 2>/dev/null; sleep 2; kill -9 "$(cat "$dir/java.pid")" 2>/dev/null ;;
	esac
	return 0
}

peer_version() {
	dpkg-query -W -f='${Version}' "$([ "$1" = rabbitmq ] && echo rabbitmq-server || echo activemq)" 2>/dev/null
}
