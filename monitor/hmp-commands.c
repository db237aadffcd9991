/*
 * The HMP command tables: name (with |aliases), args_type (hmp-parse.h),
 * usage and help as `help` prints them, and the handler. Names, argument
 * syntax and usage strings are QEMU 7.2's (scripts depend on them); help
 * texts are migvm's own wording.
 */
#include "hmp-int.h"

const HmpCommand hmp_info_cmds[] = {
    { "block", "nodes:-n,verbose:-v,device:s?", "[-n] [-v] [device]",
      "list the drives (-n: the block nodes; -v: with their images)", hmp_info_block, NULL },
    { "blockstats", "", "", "show the I/O counters of each drive", hmp_info_blockstats, NULL },
    { "cpus", "", "", "list the virtual CPUs and their host threads", hmp_info_cpus, NULL },
    { "dirty_rate", "", "", "show the last dirty rate measurement (calc_dirty_rate)", hmp_info_dirty_rate, NULL },
    { "kvm", "", "", "tell whether KVM is present and in use", hmp_info_kvm, NULL },
    { "migrate", "", "", "report the state and statistics of migration", hmp_info_migrate, NULL },
    { "migrate_capabilities", "", "", "list every migration capability with its state",
      hmp_info_migrate_capabilities, NULL },
    { "migrate_history", "", "", "show the flight recorder: recent migrations pass by pass, downtime phases",
      hmp_info_migrate_history, NULL },
    { "migrate_parameters", "", "", "list every migration parameter with its value",
      hmp_info_migrate_parameters, NULL },
    { "name", "", "", "print the name given with -name", hmp_info_name, NULL },
    { "registers", "cpustate_all:-a,vcpu:i?", "[-a|vcpu]",
      "print the vCPU registers: the current CPU's, one vCPU's by index, or with -a every vCPU's",
      hmp_info_registers, NULL },
    { "status", "", "", "report whether the VM runs (running|paused)", hmp_info_status, NULL },
    { "vcpu_dirty_limit", "", "", "show the vCPUs' dirty page rate limits and current rates",
      hmp_info_vcpu_dirty_limit, NULL },
    { "version", "", "", "print the emulator version", hmp_info_version, NULL },
    { NULL, NULL, NULL, NULL, NULL, NULL },
};

const HmpCommand hmp_cmds[] = {
    { "calc_dirty_rate", "dirty_ring:-r,dirty_bitmap:-b,second:l,sample_pages_per_GB:l?",
      "[-r] [-b] second [sample_pages_per_GB]",
      "measure how fast the guest dirties its memory for 'second' seconds (-r: with the dirty ring,\n"
      "\t\t\t -b: with the dirty bitmap; else by sampling pages)",
      hmp_calc_dirty_rate, NULL },
    { "cancel_vcpu_dirty_limit", "cpu_index:l?", "[cpu_index]",
      "drop the dirty page rate limit of every vCPU, or of vCPU cpu_index", hmp_cancel_vcpu_dirty_limit, NULL },
    { "closefd", "fdname:s", "name", "close a descriptor stored with getfd", hmp_closefd, NULL },
    { "cont|c", "force:-f", "[-f]",
      "let the guest run again (-f: even after a completed outgoing migration)", hmp_cont, NULL },
    { "getfd", "fdname:s", "name", "keep the descriptor sent along (SCM_RIGHTS) under a name",
      hmp_getfd, NULL },
    { "help|?", "name:S?", "[cmd]", "list the commands, or describe one", hmp_help, NULL },
    { "info", "item:s?", "[subcommand]", "report on the VM (see 'help info')", hmp_info_help,
      hmp_info_cmds },
    { "memsave", "val:l,size:i,filename:s", "addr size file",
      "write 'size' bytes of guest virtual memory from 'addr' into a file", hmp_memsave, NULL },
    { "migrate", "detach:-d,blk:-b,inc:-i,resume:-r,uri:s", "[-d] [-b] [-i] [-r] uri",
      "send the VM to URI (with -d, return at once instead of waiting)\n"
      "\t\t\t -b also copy the disks (no shared storage)\n"
      "\t\t\t -i copy the disks incrementally (shared base image)\n"
      "\t\t\t -r resume a paused postcopy migration",
      hmp_migrate, NULL },
    { "migrate_cancel", "", "", "abort the outgoing migration", hmp_migrate_cancel, NULL },
    { "migrate_check", "uri:s", "uri",
      "ask a listening migvm destination whether it would accept this VM (no guest data, no pause)",
      hmp_migrate_check, NULL },
    { "migrate_continue", "state:s", "state", "let a migration paused in the given state go on",
      hmp_migrate_continue, NULL },
    { "migrate_incoming", "uri:s", "uri", "start listening for a migration (after -incoming defer)",
      hmp_migrate_incoming, NULL },
    { "migrate_start_postcopy", "", "", "switch a running migration to postcopy (capability postcopy-ram)",
      hmp_migrate_start_postcopy, NULL },
    { "migrate_set_capability", "capability:s,state:b", "capability state",
      "switch one migration capability on or off", hmp_migrate_set_capability, NULL },
    { "migrate_set_parameter", "parameter:s,value:s", "parameter value",
      "change one migration parameter", hmp_migrate_set_parameter, NULL },
    { "object_add", "object:s", "[qom-type=]type,id=str[,prop=value][,...]",
      "create an object (tls-creds-x509, authz-simple, authz-list)", hmp_object_add, NULL },
    { "object_del", "id:s", "id", "remove an object", hmp_object_del, NULL },
    { "pmemsave", "val:l,size:i,filename:s", "addr size file",
      "write 'size' bytes of guest physical memory from 'addr' into a file", hmp_pmemsave, NULL },
    { "qemu-io", "d:-d,device:s,command:s", "[-d] [device] \"[command]\"",
      "run a qemu-io command on a drive: write [-P pattern] [-z] offset length,\n"
      "\t\t\t read [-P pattern] offset length",
      hmp_qemu_io, NULL },
    { "quit|q", "", "", "end the emulator process", hmp_quit, NULL },
    { "set_vcpu_dirty_limit", "dirty_rate:l,cpu_index:l?", "dirty_rate [cpu_index]",
      "keep every vCPU, or vCPU cpu_index, under dirty_rate MB/s of dirtied memory (needs the dirty ring)",
      hmp_set_vcpu_dirty_limit, NULL },
    { "stop|s", "", "", "pause the guest", hmp_stop, NULL },
    { "system_reset", "", "", "reset the machine as if by its reset button", hmp_system_reset, NULL },
    { NULL, NULL, NULL, NULL, NULL, NULL },
};
