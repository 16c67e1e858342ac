<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <https://www.gnu.org/licenses/>.

/**
 * Bulk benchmark of the plugin in a real Moodle: what user_update_user() x N costs with nothing, with Moodle's
 * standard log store only, with the plugin only, with both, and with the plugin while its broker cannot be
 * reached (192.0.2.1, a documentation address nothing answers); several rounds, modes interleaved, medians.
 *
 * Run by hand against a TEST site with local_eventrelay installed (it updates its own bench users only):
 *   php tests/moodle/bulk_bench.php --moodle=/path/to/moodle [--users=1000] [--rounds=5]
 * Each timed run ends as a request would: the plugin's buffer and the log store's buffer are written, and both
 * count. Between runs (not timed) the rows the run wrote are deleted, so every run sees the same tables.
 * --no-fsync (PostgreSQL): this session commits without waiting for the disk (synchronous_commit off), which
 * takes a shared disk's flush times, the largest noise here, out of every mode alike.
 * --only=MODE (nothing, log, plugin, both): one run of that mode and nothing else, for an instruction count
 * under valgrind (tests/moodle/instructions.sh), which unlike time does not depend on what the machine does.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

// The Moodle to load is given on the command line: config.php is required below.
// phpcs:disable moodle.Files.MoodleInternal.MoodleInternalGlobalState
define('CLI_SCRIPT', true);

$options = getopt('', ['moodle:', 'users:', 'rounds:', 'no-fsync', 'only:', 'help']);
if (isset($options['help']) || empty($options['moodle'])) {
    fwrite(STDERR, "Usage: php tests/moodle/bulk_bench.php --moodle=DIR [--users=1000] [--rounds=5] [--no-fsync] "
        . "[--only=nothing|log|plugin|both]\n");
    exit(isset($options['help']) ? 0 : 2);
}
require(rtrim($options['moodle'], '/') . '/config.php');
require_once($CFG->dirroot . '/user/lib.php');

$users = max(1, (int) ($options['users'] ?? 1000));
if (isset($options['no-fsync'])) {
    $DB->execute('SET synchronous_commit TO off');
}
$rounds = max(1, (int) ($options['rounds'] ?? 5));
$siteid = get_config('local_eventrelay', 'siteid') ?: 'bench';
$savedstores = get_config('tool_log', 'enabled_stores');
$savedsiteid = get_config('local_eventrelay', 'siteid');
$savedhost = (string) get_config('local_eventrelay', 'host');
$unreachable = '192.0.2.1';

/**
 * Turns the standard log store and the plugin on or off.
 *
 * @param bool $log Whether logstore_standard records.
 * @param string $siteid The plugin's site id; '' turns it off (its observer returns at once).
 * @param string $host The plugin's broker host.
 * @return void
 */
function bench_configure(bool $log, string $siteid, string $host): void {
    set_config('enabled_stores', $log ? 'logstore_standard' : '', 'tool_log');
    set_config('siteid', $siteid, 'local_eventrelay');
    set_config('host', $host, 'local_eventrelay');
    get_log_manager(true);
}

/**
 * Returns the CPU time used so far by this PHP process and, on PostgreSQL, by its database backend: unlike
 * wall time, it does not count waiting for a disk or a machine that is busy with something else.
 *
 * @param int $backend The backend's process id (0 when unknown).
 * @return float Milliseconds.
 */
function bench_cpu(int $backend): float {
    $usage = getrusage();
    $ms = ($usage['ru_utime.tv_sec'] + $usage['ru_stime.tv_sec']) * 1000
        + ($usage['ru_utime.tv_usec'] + $usage['ru_stime.tv_usec']) / 1000;
    $stat = $backend > 0 ? @file_get_contents("/proc/{$backend}/stat") : false;
    if ($stat !== false) {
        // Fields 14 and 15 (utime, stime) in clock ticks of 10 ms, after the command name in parentheses.
        $fields = explode(' ', substr($stat, strrpos($stat, ')') + 2));
        $ms += ((int) $fields[11] + (int) $fields[12]) * 10;
    }
    return $ms;
}

/**
 * Returns the bench users, creating the missing ones (with the log store and the plugin off).
 *
 * @param int $count How many.
 * @return int[] Their ids.
 */
function bench_users(int $count): array {
    global $CFG, $DB;
    $ids = [];
    for ($i = 0; $i < $count; $i++) {
        $username = sprintf('relaybench%05d', $i);
        $id = $DB->get_field('user', 'id', ['username' => $username, 'mnethostid' => $CFG->mnet_localhost_id]);
        if (!$id) {
            $id = user_create_user((object) [
                'username' => $username, 'firstname' => 'Bench', 'lastname' => "User {$i}",
                'email' => "{$username}@example.invalid", 'password' => AUTH_PASSWORD_NOT_CACHED, 'auth' => 'manual',
                'confirmed' => 1, 'mnethostid' => $CFG->mnet_localhost_id,
            ], false, false);
        }
        $ids[] = (int) $id;
    }
    return $ids;
}

$modes = [
    'nothing' => [false, '', $savedhost],
    'standard log' => [true, '', $savedhost],
    'plugin' => [false, $siteid, $savedhost],
    'log + plugin' => [true, $siteid, $savedhost],
    'plugin, no broker' => [false, $siteid, $unreachable],
];

$only = ['nothing' => 'nothing', 'log' => 'standard log', 'plugin' => 'plugin', 'both' => 'log + plugin'];
if (isset($options['only'])) {
    if (!isset($only[$options['only']])) {
        fwrite(STDERR, "--only: one of " . implode(', ', array_keys($only)) . "\n");
        exit(2);
    }
    $modes = [$only[$options['only']] => $modes[$only[$options['only']]]];
    $rounds = 1;
}
$times = array_fill_keys(array_keys($modes), []);
$cpu = array_fill_keys(array_keys($modes), []);
$backend = $DB->get_dbfamily() === 'postgres' ? (int) $DB->get_field_sql('SELECT pg_backend_pid()') : 0;
$names = array_keys($modes);
$firstlog = (int) $DB->get_field_sql('SELECT COALESCE(MAX(id), 0) FROM {logstore_standard_log}');
$firstoutbox = (int) $DB->get_field_sql('SELECT COALESCE(MAX(id), 0) FROM {local_eventrelay_outbox}');

try {
    bench_configure(false, '', $savedhost);
    $ids = bench_users($users);
    for ($round = 0; $round < $rounds; $round++) {
        // Interleaved, and each round starts with a different mode, so drift hits every mode alike.
        $shift = $round % count($names);
        $order = array_merge(array_slice($names, $shift), array_slice($names, 0, $shift));
        foreach ($order as $mode) {
            [$log, $site, $host] = $modes[$mode];
            bench_configure($log, $site, $host);
            $cpustart = bench_cpu($backend);
            $start = hrtime(true);
            foreach ($ids as $n => $id) {
                user_update_user((object) ['id' => $id, 'department' => "r{$round}-{$n}-" . substr(md5($mode), 0, 6)], false);
            }
            // The end of the request: both buffers are written.
            \local_eventrelay\local\outbox_writer::instance()->flush();
            get_log_manager(true);
            $times[$mode][] = (hrtime(true) - $start) / 1e6;
            $cpu[$mode][] = bench_cpu($backend) - $cpustart;
            $DB->delete_records_select('logstore_standard_log', 'id > ?', [$firstlog]);
            $DB->delete_records_select('local_eventrelay_outbox', 'id > ?', [$firstoutbox]);
        }
        fwrite(STDERR, 'round ' . ($round + 1) . "/{$rounds} done\n");
    }
} finally {
    set_config('enabled_stores', $savedstores, 'tool_log');
    set_config('siteid', $savedsiteid, 'local_eventrelay');
    set_config('host', $savedhost, 'local_eventrelay');
    get_log_manager(true);
}

if (isset($options['only'])) {
    printf("%s: user_update_user() x %d in %.1f ms\n", $options['only'], $users, reset($times)[0]);
    exit(0);
}

$median = function (array $values): float {
    sort($values);
    $n = count($values);
    return $n % 2 ? $values[intdiv($n, 2)] : ($values[$n / 2 - 1] + $values[$n / 2]) / 2;
};
// Per event: the median over rounds of (mode - nothing) in the same round, which cancels the drift of a
// shared machine (disk flushes, autovacuum) better than the difference of two medians.
$extra = function (string $mode, array $times) use ($median, $users): float {
    $diffs = [];
    foreach ($times[$mode] as $round => $time) {
        $diffs[] = ($time - $times['nothing'][$round]) / $users;
    }
    return $median($diffs);
};
printf(
    "Moodle %s, %s%s, user_update_user() x %d, %d rounds, modes interleaved. Per run: wall and CPU (PHP + its "
        . "database backend) ms, medians; per event: median over rounds of the extra over nothing in the same round\n",
    $CFG->release,
    $DB->get_dbfamily(),
    isset($options['no-fsync']) ? ' (synchronous_commit off)' : '',
    $users,
    $rounds
);
foreach ($times as $mode => $values) {
    printf(
        "  %-17s wall %7.1f ms %+.3f ms/event   CPU %7.1f ms %+.3f ms/event   wall runs: %s\n",
        $mode,
        $median($values),
        $extra($mode, $times),
        $median($cpu[$mode]),
        $extra($mode, $cpu),
        implode(' ', array_map(fn($v) => sprintf('%.0f', $v), $values))
    );
}
foreach (['wall' => $times, 'CPU' => $cpu] as $what => $measure) {
    $logcost = $extra('standard log', $measure);
    printf(
        "plugin / standard log per-event %s cost: %.2f (plugin alone), %.2f (on top of the log: (log + plugin) - log)\n",
        $what,
        $logcost > 0 ? $extra('plugin', $measure) / $logcost : INF,
        $logcost > 0 ? ($extra('log + plugin', $measure) - $logcost) / $logcost : INF
    );
}
