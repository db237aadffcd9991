/*
 * fd:NAME, for both directions: the descriptor NAME passed with getfd to the
 * monitor that runs migrate or migrate-incoming.
 */
#include "channel.h"
#include "monitor.h"

bool mig_address_take_fd(const MigAddress *addr, int *fd, Error **errp)
{
    Monitor *mon;

    *fd = -1;
    if (addr->transport != MIG_TRANSPORT_FD) {
        return true;
    }
    mon = monitor_cur();
    *fd = mon ? monitor_fd_take(mon, addr->fdname, NULL) : -1;
    if (*fd < 0) {
        error_setg(errp, "File descriptor named '%s' has not been found", addr->fdname);
        return false;
    }
    return true;
}
