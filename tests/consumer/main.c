/* SPDX-License-Identifier: MIT */
/* Consumer of the installed libapf: includes the public headers and calls into each part. */
#include <stdio.h>
#include <string.h>

#include <apf/error.h>
#include <apf/proto.h>
#include <apf/version.h>

int main(void)
{
    if (apf_version() != (uint32_t)APF_VERSION_HEX) {
        fprintf(stderr, "consumer: header/library version mismatch\n");
        return 1;
    }
    if (strcmp(apf_err_name(APF_EINVAL), "EINVAL") != 0)
        return 1;
    printf("consumer: libapf %s, protocol %06x\n", apf_version_string(), APF_PROTO_VERSION);
    return 0;
}
