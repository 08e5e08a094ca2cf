#!/usr/bin/env bash
# Entry point of the kafka service in docker-compose.yml: the same broker as scripts/stack
# (SASL_SSL + SCRAM-SHA-512 for clients, SASL/PLAIN controller on loopback, StandardAuthorizer).
# Turns KAFKA_* variables into server.properties (KAFKA_FOO_BAR -> foo.bar), formats storage
# with the SCRAM users on first start (they must exist before the broker does), then starts.
set -euo pipefail
props=/tmp/server.properties
: >"$props"
while IFS='=' read -r name value; do
    [[ $name == KAFKA_* ]] || continue
    key=${name#KAFKA_}
    key=${key,,}
    printf '%s=%s\n' "${key//_/.}" "$value" >>"$props"
done < <(env)
cat >>"$props" <<PROPS
log.dirs=/var/lib/kafka/data
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${PAYLEDGER_KAFKA_PASSWORD_ADMIN}";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="${PAYLEDGER_KAFKA_CONTROLLER_PASSWORD}" user_controller="${PAYLEDGER_KAFKA_CONTROLLER_PASSWORD}";
PROPS
if [[ ! -f /var/lib/kafka/data/meta.properties ]]; then
    scram=()
    for user in admin ledger projector gateway cli; do
        var=PAYLEDGER_KAFKA_PASSWORD_${user^^}
        scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=${!var}]")
    done
    /opt/kafka/bin/kafka-storage.sh format -t "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" \
        -c "$props" "${scram[@]}"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$props"
