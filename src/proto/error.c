/* SPDX-License-Identifier: MIT */
/* apf_strerror() and apf_err_name(), both generated from APF_ERRNO_MAP (apf/error.h). */
#include "apf/error.h"

const char *apf_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define APF__ERRNO_MSG(name, value, msg)                                                       \
    case (value):                                                                              \
        return msg;
        APF_ERRNO_MAP(APF__ERRNO_MSG)
#undef APF__ERRNO_MSG
    default:
        return "unknown error";
    }
}

const char *apf_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define APF__ERRNO_NAME(name, value, msg)                                                      \
    case (value):                                                                              \
        return #name;
        APF_ERRNO_MAP(APF__ERRNO_NAME)
#undef APF__ERRNO_NAME
    default:
        return "UNKNOWN";
    }
}
