/* SPDX-License-Identifier: MIT */
/* The public headers libapf-sys binds (input of generate.sh). */
#include <apf/error.h>
#include <apf/version.h>
#include <apf/proto.h>
#include <apf/trace.h>
#include <apf/trace_kvm.h>
#include <apf/proto_xen.h>
#include <apf/proto_mmio.h>
#include <apf/proto_s390.h>
#include <apf/host.h>
#include <apf/host_transport.h>
#include <apf/host_kvm_x86.h>
#include <apf/host_kvm_arm64.h>
#include <apf/host_xen.h>
#include <apf/host_mmio.h>
#include <apf/host_s390.h>
#include <apf/guest.h>
#include <apf/guest_backend.h>
#include <apf/guest_xen.h>
#include <apf/guest_mmio.h>
#include <apf/guest_s390.h>
#include <apf/loopback.h>
