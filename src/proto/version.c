/* SPDX-License-Identifier: MIT */
/* The library version, from the single definition in apf/version.h. */
#include "apf/version.h"

#define APF__STR2(x) #x
#define APF__STR(x) APF__STR2(x)

uint32_t apf_version(void)
{
    return (uint32_t)APF_VERSION_HEX;
}

const char *apf_version_string(void)
{
    return APF__STR(APF_VERSION_MAJOR) "." APF__STR(APF_VERSION_MINOR) "." APF__STR(
        APF_VERSION_PATCH);
}
