/*
 * RAM's postcopy hooks for tests and fuzz targets that load or save RAM
 * without postcopy: no incoming postcopy, no page requests.
 */
#include "postcopy-ram.h"

PostcopyIncomingState postcopy_incoming_state(void)
{
    return POSTCOPY_INCOMING_NONE;
}

void postcopy_mark_received(RAMBlock *b, uint64_t offset)
{
}

bool postcopy_place_page(RAMBlock *b, uint64_t offset, const void *data, Error **errp)
{
    error_setg(errp, "postcopy page placed without postcopy");
    return false;
}

bool postcopy_request_pending(void)
{
    return false;
}

bool postcopy_request_pop(RAMBlock **b, uint64_t *start, uint64_t *len)
{
    return false;
}

uint64_t postcopy_requests_count(void)
{
    return 0;
}
