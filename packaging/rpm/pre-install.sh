# skiff's %pre: the `skiff` system user (it reads /var/log through the adm group, given by the
# systemd unit).
getent group skiff >/dev/null || groupadd -r skiff
getent passwd skiff >/dev/null || \
    useradd -r -g skiff -d /var/lib/skiff -M -s /sbin/nologin -c "skiff log shipper" skiff
exit 0
