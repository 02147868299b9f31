#!/usr/bin/env bash
# A self-contained single-node SLURM cluster for the test suite (Debian's slurm-wlm 22.05: the
# packages slurmctld slurmd slurmdbd slurm-client munge mariadb-server), with real daemons, two
# fake GPUs as gres, and accounting through slurmdbd (its own MariaDB), so that the clusters are
# known by name: `cwtest` (node1, partition debug) and a second cluster `cwother` (node2,
# partition other; its own slurmctld and slurmd, DIR/other/slurm.conf), which a client of cwtest
# reaches only with `-M cwother`, as at multi-cluster sites.
#
#   scripts/slurm-fixture.sh start DIR    start it (or reuse the one already up in DIR)
#   scripts/slurm-fixture.sh status DIR   exit 0 when the fixture in DIR answers
#   scripts/slurm-fixture.sh stop DIR     stop its daemons (the state in DIR stays)
#
# Everything lives under DIR: its own munged (own key and socket), MariaDB (mysql/, socket only,
# no network) and slurmdbd, slurm.conf, slurmdbd.conf and gres.conf, state, spool, logs, pid
# files, and the jobcomp file (JobCompType=jobcomp/filetxt, one line per finished job). `start` prints the SLURM_CONF to
# export; client commands (sinfo, sbatch, squeue...) need it. Needs root.
#
# Pitfalls handled: MailProg=/bin/true (there is no mailer); batch_sched_delay=0 and
# sched_min_interval=0 (else GPU jobs wait ~3 s); SlurmdParameters=config_overrides (the node
# declares more CPUs than the machine has); while slurmctld is down every client command blocks
# about 10 s, so each one here runs under `timeout`; slurmd may ignore SIGTERM while it cannot
# register (SIGKILL after 5 s); PID 1 of a container may reap orphans lazily, so a zombie counts
# as stopped. The PMIx warnings in the daemons' logs are harmless.
set -euo pipefail

usage() { echo "usage: $0 start|status|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
CMD=$1
D=$2
case "$D" in /*) ;; *) D="$PWD/$D" ;; esac
NODE=node1
HOST=$(hostname -s)
export SLURM_CONF="$D/slurm.conf"

# True when pid file $1 names a live process (not a zombie).
alive() {
  local f=$1 p st
  [ -f "$f" ] || return 1
  p=$(cat "$f")
  st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)
  [ -n "$st" ] && [ "$st" != Z ]
}

# The node's state as sinfo reports it, or nothing when the controller does not answer.
node_state() { timeout 5 sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true; }

# True when the fixture in DIR is up: its three daemons alive and the node usable.
up() {
  [ -f "$SLURM_CONF" ] && alive "$D/run/munged.fxpid" && alive "$D/run/mariadbd.fxpid" &&
    alive "$D/run/slurmdbd.fxpid" && alive "$D/run/slurmctld.fxpid" && alive "$D/run/slurmd.fxpid" &&
    alive "$D/run/other-slurmctld.fxpid" && alive "$D/run/other-slurmd.fxpid" || return 1
  grep -q '^AccountingStorageType=accounting_storage/slurmdbd' "$SLURM_CONF" || return 1
  case "$(node_state)" in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac
}

stop() {
  for n in other-slurmd other-slurmctld slurmd slurmctld slurmdbd mariadbd munged; do
    local f="$D/run/$n.fxpid" p
    [ -f "$f" ] || continue
    p=$(cat "$f")
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do alive "$f" || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    rm -f "$f"
  done
}

case "$CMD" in
  stop) stop; exit 0 ;;
  status) up && { echo "SLURM fixture in $D is up: export SLURM_CONF=$SLURM_CONF"; exit 0; }
          echo "SLURM fixture in $D is not up" >&2; exit 1 ;;
  start) ;;
  *) usage ;;
esac

[ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 1; }
# The daemons outlive the checkout that started them: they must not keep its directory as their
# working directory (slurmstepd inherits it; once the checkout is removed every job step prints
# "Unable to get current working directory" into the job's output).
cd /
for bin in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/slurmdbd /usr/sbin/munged /usr/sbin/mungekey \
  /usr/sbin/mariadbd mariadb-install-db sinfo sacctmgr; do
  command -v "$bin" >/dev/null || {
    echo "$0: $bin is missing: apt-get install slurmctld slurmd slurmdbd slurm-client munge mariadb-server" >&2
    exit 1
  }
done

# Idempotent: a fixture already up in DIR is reused.
if up; then
  echo "SLURM fixture already up in $D; export SLURM_CONF=$SLURM_CONF"
  exit 0
fi
# Half up (a daemon died, or the machine was restarted with stale pid files): start afresh.
stop

t0=$(date +%s%N)
mkdir -p "$D"/{state,spool,run,log,munge,munge-sock,out,mysql/data,mysql/run} "$D"/other/{state,spool,run,log}
chmod 755 "$D"
chmod 1777 "$D/out"
chown munge:munge "$D/munge" "$D/munge-sock"
chmod 700 "$D/munge"
chmod 755 "$D/munge-sock" # the socket's directory must not be world-writable
if [ ! -f "$D/munge/munge.key" ]; then
  mungekey --create --keyfile="$D/munge/munge.key"
  chown munge:munge "$D/munge/munge.key"
  chmod 400 "$D/munge/munge.key"
fi
for i in 0 1; do [ -e "$D/gpu$i" ] || mknod -m 666 "$D/gpu$i" c 1 3; done # fake GPUs (like /dev/null)

rm -f "$D/munge-sock/munge.sock" "$D/munge/munged.pid"
runuser -u munge -- /usr/sbin/munged --key-file="$D/munge/munge.key" --socket="$D/munge-sock/munge.sock" \
  --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed"
for _ in $(seq 50); do [ -S "$D/munge-sock/munge.sock" ] && [ -s "$D/munge/munged.pid" ] && break; sleep 0.1; done
[ -s "$D/munge/munged.pid" ] || { echo "munged did not start:"; tail -5 "$D/munge/munged.log"; exit 1; }
cp "$D/munge/munged.pid" "$D/run/munged.fxpid"

# MariaDB for slurmdbd: socket only, its own data directory; root connects by unix_socket.
chown mysql:mysql "$D/mysql/data" "$D/mysql/run"
if [ ! -d "$D/mysql/data/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$D/mysql/data" --auth-root-authentication-method=socket \
    --skip-test-db > "$D/log/mariadb-install.log" 2>&1 || { echo "mariadb-install-db failed:"; tail -5 "$D/log/mariadb-install.log"; exit 1; }
fi
rm -f "$D/mysql/run/mysqld.sock"
setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$D/mysql/data" --socket="$D/mysql/run/mysqld.sock" \
  --skip-networking --pid-file="$D/mysql/run/mysqld.pid" --log-error="$D/log/mariadbd.log" \
  --innodb-buffer-pool-size=32M --innodb-lock-wait-timeout=900 >> "$D/log/mariadbd.out" 2>&1 < /dev/null &
echo $! > "$D/run/mariadbd.fxpid"
for _ in $(seq 100); do [ -S "$D/mysql/run/mysqld.sock" ] && break; sleep 0.1; done
[ -S "$D/mysql/run/mysqld.sock" ] || { echo "mariadbd did not start:"; tail -5 "$D/log/mariadbd.log"; exit 1; }

# slurmdbd reads slurmdbd.conf next to SLURM_CONF; root's own, 0600, as it requires.
cat > "$D/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$D/munge-sock/munge.sock
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
CONF
chmod 600 "$D/slurmdbd.conf"

cat > "$SLURM_CONF" <<CONF
ClusterName=cwtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge-sock/munge.sock
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.log
MinJobAge=300
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStoragePass=$D/munge-sock/munge.sock
GresTypes=gpu
NodeName=$NODE NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=4000 Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$D/gres.conf" <<CONF
AutoDetect=off
NodeName=$NODE Name=gpu Type=fake File=$D/gpu[0-1]
CONF
chmod 644 "$SLURM_CONF" "$D/gres.conf" # the lab accounts' client commands read it

# The second cluster: the same settings, its own name, ports, state, node and partition.
O="$D/other"
sed -e 's/^ClusterName=cwtest$/ClusterName=cwother/' -e 's/^SlurmctldPort=6817$/SlurmctldPort=6827/' \
  -e 's/^SlurmdPort=6818$/SlurmdPort=6828/' -e "s#^StateSaveLocation=.*#StateSaveLocation=$O/state#" \
  -e "s#^SlurmdSpoolDir=.*#SlurmdSpoolDir=$O/spool#" -e "s#^SlurmctldPidFile=.*#SlurmctldPidFile=$O/run/slurmctld.pid#" \
  -e "s#^SlurmdPidFile=.*#SlurmdPidFile=$O/run/slurmd.pid#" -e "s#^SlurmctldLogFile=.*#SlurmctldLogFile=$O/log/slurmctld.log#" \
  -e "s#^SlurmdLogFile=.*#SlurmdLogFile=$O/log/slurmd.log#" -e "s#^JobCompLoc=.*#JobCompLoc=$O/log/jobcomp.log#" \
  -e '/^GresTypes=/d' -e '/^NodeName=/d' -e '/^PartitionName=/d' "$SLURM_CONF" > "$O/slurm.conf"
cat >> "$O/slurm.conf" <<CONF
NodeName=node2 NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000 State=UNKNOWN
PartitionName=other Nodes=node2 Default=YES MaxTime=INFINITE State=UP
CONF
chmod 755 "$O"
chmod 644 "$O/slurm.conf"

MYSQL_UNIX_PORT="$D/mysql/run/mysqld.sock" setsid /usr/sbin/slurmdbd -D >> "$D/log/slurmdbd.out" 2>&1 < /dev/null &
echo $! > "$D/run/slurmdbd.fxpid"
registered=
for _ in $(seq 100); do
  alive "$D/run/slurmdbd.fxpid" || { echo "slurmdbd died:"; tail -5 "$D/log/slurmdbd.log"; exit 1; }
  known=$(timeout 5 sacctmgr -n -P list cluster format=cluster 2>/dev/null || true)
  if echo "$known" | grep -qx cwtest && echo "$known" | grep -qx cwother; then registered=1; break; fi
  timeout 5 sacctmgr -i add cluster cwtest cwother > /dev/null 2>&1 || true
  sleep 0.2
done
[ -n "$registered" ] || { echo "slurmdbd does not know the clusters cwtest and cwother: see $D/log/slurmdbd.log"; exit 1; }

setsid /usr/sbin/slurmctld -D -f "$SLURM_CONF" >> "$D/log/slurmctld.out" 2>&1 < /dev/null &
echo $! > "$D/run/slurmctld.fxpid"
setsid /usr/sbin/slurmd -D -f "$SLURM_CONF" -N "$NODE" >> "$D/log/slurmd.out" 2>&1 < /dev/null &
echo $! > "$D/run/slurmd.fxpid"
setsid /usr/sbin/slurmctld -D -f "$O/slurm.conf" >> "$O/log/slurmctld.out" 2>&1 < /dev/null &
echo $! > "$D/run/other-slurmctld.fxpid"
setsid /usr/sbin/slurmd -D -f "$O/slurm.conf" -N node2 >> "$O/log/slurmd.out" 2>&1 < /dev/null &
echo $! > "$D/run/other-slurmd.fxpid"

st=
deadline=$(($(date +%s) + 30))
while [ "$(date +%s)" -lt $deadline ]; do
  alive "$D/run/slurmctld.fxpid" || { echo "slurmctld died:"; tail -5 "$D/log/slurmctld.log"; exit 1; }
  alive "$D/run/slurmd.fxpid" || { echo "slurmd died:"; tail -5 "$D/log/slurmd.log"; exit 1; }
  st=$(node_state)
  [ "$st" = idle ] && break
  sleep 0.2
done
[ "$st" = idle ] || { echo "the node is not idle after 30 s (state: ${st:-no answer}): see $D/log/"; exit 1; }
# `-M cwother` needs its slurmctld registered with slurmdbd (its control host known), and its
# node up.
st=
for _ in $(seq 150); do
  alive "$D/run/other-slurmctld.fxpid" || { echo "the second slurmctld died:"; tail -5 "$O/log/slurmctld.log"; exit 1; }
  st=$(timeout 5 sinfo -M cwother -h -N -o '%T' 2>/dev/null | grep -v '^CLUSTER' | head -n1 || true)
  [ "$st" = idle ] && [ -n "$(timeout 5 sacctmgr -n -P list cluster cwtest format=controlhost 2>/dev/null)" ] && break
  sleep 0.2
done
[ "$st" = idle ] || { echo "node2 of cwother is not idle (state: ${st:-no answer}): see $O/log/"; exit 1; }
echo "SLURM fixture up in $D in $((($(date +%s%N) - t0) / 1000000)) ms; export SLURM_CONF=$SLURM_CONF"
