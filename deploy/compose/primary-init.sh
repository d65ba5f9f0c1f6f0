#!/bin/bash
# Run once by the postgres image when the primary's data directory is new: a replication role
# for the standby's base backup and stream, allowed in from the compose network.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U postgres -c "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'registry'"
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
