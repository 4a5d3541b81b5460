# skiff's %post ($1 = 1 install, 2 upgrade): directories owned by the service, the unit known
# to systemd; an upgrade restarts a running service. Like the Beats, not enabled by default.
install -d -o skiff -g skiff -m 0750 /var/lib/skiff /var/log/skiff
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 2 ]; then
        systemctl try-restart skiff.service >/dev/null 2>&1 || :
    fi
fi
exit 0
