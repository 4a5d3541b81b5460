# skiff's %postun: /var/lib/skiff (read positions, keystore, agent.id) and /var/log/skiff are
# kept, as are an edited skiff.yml (saved as skiff.yml.rpmsave) and the skiff user.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
