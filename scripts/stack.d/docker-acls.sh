#!/usr/bin/env bash
# One-shot in docker-compose.yml: applies scripts/stack.d/kafka-acls.txt with kafka-acls.sh
# as the admin principal. (scripts/stack does the same natively through StackKafka.java.)
set -euo pipefail
cfg=/tmp/admin.properties
cat >"$cfg" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${PAYLEDGER_KAFKA_PASSWORD_ADMIN}";
ssl.truststore.type=PEM
ssl.truststore.location=/tls/ca.crt
PROPS
while read -r principal type pattern name ops; do
    [[ -z $principal || $principal == \#* ]] && continue
    args=(--bootstrap-server kafka:19092 --command-config "$cfg" --add --allow-principal "User:$principal"
          --resource-pattern-type "$pattern")
    case $type in
    topic) args+=(--topic "$name") ;;
    group) args+=(--group "$name") ;;
    transactional-id) args+=(--transactional-id "$name") ;;
    cluster) args+=(--cluster) ;;
    esac
    IFS=',' read -ra list <<<"$ops"
    for op in "${list[@]}"; do args+=(--operation "$op"); done
    /opt/kafka/bin/kafka-acls.sh "${args[@]}" >/dev/null
done </acls.txt
echo "ACLs applied"
