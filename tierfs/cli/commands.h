// The subcommands of the `tierfs` command, one file each (cmd_*.cc). Each adds
// itself to the CLI11 app; its callback stores the process exit status in
// `status`. Errors for the user are thrown as std::exception and become one
// line in main().
#pragma once

namespace CLI {
class App;
}

namespace tierfs {

void add_topology_command(CLI::App& app, int& status);
void add_check_config_command(CLI::App& app, int& status);
void add_mount_command(CLI::App& app, int& status);
void add_map_command(CLI::App& app, int& status);
void add_stats_command(CLI::App& app, int& status);
void add_bpf_command(CLI::App& app, int& status);
void add_job_command(CLI::App& app, int& status);
void add_stage_command(CLI::App& app, int& status);
void add_cleanup_command(CLI::App& app, int& status);
void add_migrate_command(CLI::App& app, int& status);
void add_check_command(CLI::App& app, int& status);

}  // namespace tierfs
