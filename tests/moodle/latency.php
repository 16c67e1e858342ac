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
 * Commit-to-subscriber latency of the plugin in a real Moodle: N user changes at a steady rate, each ending
 * as a request ends (the plugin's buffer written), and a subscriber bound to the plugin's exchange that
 * notes when each event arrives.
 *
 * Run by hand against a TEST site with local_eventrelay installed and its broker settings pointing at a
 * running RabbitMQ:
 *   php tests/moodle/latency.php --moodle=DIR --delivery=follow [--changes=1000] [--rate=20]
 *   php tests/moodle/latency.php --moodle=DIR --delivery=cron   [--changes=1000] [--rate=20]
 * follow: the script starts `cli/drain.php --follow` and stops it at the end. cron: it runs
 * `admin/cli/cron.php` once a minute, as a `* * * * *` crontab line would. Nothing else may drain meanwhile.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

// The Moodle to load is given on the command line: config.php is required below.
// phpcs:disable moodle.Files.MoodleInternal.MoodleInternalGlobalState
define('CLI_SCRIPT', true);

$options = getopt('', ['moodle:', 'delivery:', 'changes:', 'rate:', 'help']);
$delivery = $options['delivery'] ?? '';
if (isset($options['help']) || empty($options['moodle']) || !in_array($delivery, ['follow', 'cron'], true)) {
    fwrite(STDERR, "Usage: php tests/moodle/latency.php --moodle=DIR --delivery=follow|cron [--changes=1000] [--rate=20]\n");
    exit(isset($options['help']) ? 0 : 2);
}
$moodledir = rtrim($options['moodle'], '/');
require($moodledir . '/config.php');
require_once($CFG->dirroot . '/user/lib.php');

$changes = max(1, (int) ($options['changes'] ?? 1000));
$rate = max(0.1, (float) ($options['rate'] ?? 20));
$config = \local_eventrelay\local\config::load();
if (!$config->is_recording() || !$config->has_broker()) {
    fwrite(STDERR, "Set local_eventrelay's siteid and broker settings first.\n");
    exit(2);
}
$connection = $config->connection();
$user = $DB->get_record('user', ['username' => 'relaylatency']);
if (!$user) {
    $user = (object) ['id' => user_create_user((object) [
        'username' => 'relaylatency', 'firstname' => 'Latency', 'lastname' => 'Probe', 'email' => 'relaylatency@example.invalid',
        'password' => 'Latency-1234', 'auth' => 'manual', 'confirmed' => 1, 'mnethostid' => $CFG->mnet_localhost_id,
    ], false, true)];
    \local_eventrelay\local\outbox_writer::instance()->flush();
}

// The subscriber: its own process, its own queue bound to the site's user.updated events.
$php = PHP_BINARY;
$subscriber = proc_open(
    [$php, __DIR__ . '/subscriber.php', $connection->host, (string) $connection->port,
    $connection->user, $connection->vhost, $connection->exchange, $config->site_id() . '.user.updated', 'lat-'],
    [1 => ['pipe', 'w'], 2 => STDERR],
    $pipes,
    null,
    getenv() + ['RELAY_BROKER_PASSWORD' => $connection->get_password()]
);
$ready = fgets($pipes[1]);
if (trim((string) $ready) !== 'ready') {
    fwrite(STDERR, "The subscriber did not start\n");
    exit(1);
}

// What drains: the follower, or cron once a minute.
$drainer = $delivery === 'follow'
    ? proc_open(
        [$php, "{$moodledir}/local/eventrelay/cli/drain.php", '--follow'],
        [1 => ['file', '/dev/null', 'w'], 2 => STDERR],
        $unused
    )
    : proc_open(
        ['bash', '-c', "while true; do {$php} {$moodledir}/admin/cli/cron.php >/dev/null 2>&1; "
            . 'sleep $((60 - $(date +%s) % 60)); done'],
        [1 => ['file', '/dev/null', 'w'], 2 => STDERR],
        $unused
    );
sleep(2);

$committed = [];
$start = microtime(true);
for ($i = 0; $i < $changes; $i++) {
    $due = $start + $i / $rate;
    $wait = $due - microtime(true);
    if ($wait > 0) {
        usleep((int) ($wait * 1e6));
    }
    user_update_user((object) ['id' => $user->id, 'department' => "lat-{$i}"], false);
    $committed[$i] = microtime(true);
    // The end of the request.
    \local_eventrelay\local\outbox_writer::instance()->flush();
}
fwrite(STDERR, sprintf("%d changes in %.1f s; waiting for the subscriber\n", $changes, microtime(true) - $start));

$received = [];
$deadline = microtime(true) + ($delivery === 'cron' ? 180 : 30);
stream_set_blocking($pipes[1], false);
while (count($received) < $changes && microtime(true) < $deadline) {
    $line = fgets($pipes[1]);
    if ($line === false) {
        usleep(20000);
        continue;
    }
    [$time, $token] = explode(' ', trim($line)) + [1 => ''];
    $received[(int) substr($token, strlen('lat-'))] = (float) $time;
}
proc_terminate($subscriber);
proc_terminate($drainer);

$latencies = [];
foreach ($committed as $i => $time) {
    if (isset($received[$i])) {
        $latencies[] = ($received[$i] - $time) * 1000;
    }
}
sort($latencies);
$pick = fn(float $q) => $latencies ? $latencies[min(count($latencies) - 1, (int) floor($q * count($latencies)))] : NAN;
printf(
    "Moodle %s, delivery by %s: %d changes at %.0f/s, %d received; commit -> subscriber ms: p50 %.0f, p90 %.0f, "
    . "p99 %.0f, max %.0f\n",
    $CFG->release,
    $delivery === 'follow' ? 'the follower' : 'cron every minute',
    $changes,
    $rate,
    count($latencies),
    $pick(0.5),
    $pick(0.9),
    $pick(0.99),
    $latencies ? end($latencies) : NAN
);
exit(count($latencies) === $changes ? 0 : 1);
