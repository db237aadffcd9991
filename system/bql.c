/*
 * The big lock (BQL): device and run state. Not recursive; bql_locked() is a
 * thread-local flag, cheap enough for the [BQL] assertions at entry points.
 * Its own file so unit tests link the real lock instead of copies.
 */
#include <pthread.h>
#include <glib.h>
#include "vm.h"

static pthread_mutex_t bql = PTHREAD_MUTEX_INITIALIZER;
static __thread bool bql_held;

void bql_lock(void)
{
    g_assert(!bql_held);       /* the BQL is not recursive */
    pthread_mutex_lock(&bql);
    bql_held = true;
}

void bql_unlock(void)
{
    g_assert(bql_held);
    bql_held = false;
    pthread_mutex_unlock(&bql);
}

bool bql_locked(void)
{
    return bql_held;
}
