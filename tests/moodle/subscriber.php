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
 * The subscriber of tests/moodle/latency.php (plain PHP, php-amqplib): binds a private queue to an exchange,
 * prints "ready", then one line "<arrival microtime> <snapshot department>" per event whose department starts
 * with the given prefix.
 *
 * Usage: RELAY_BROKER_PASSWORD=... php subscriber.php HOST PORT USER VHOST EXCHANGE BINDINGKEY PREFIX
 * (the password comes from the environment, never the command line).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

// Plain PHP, no Moodle: there is no MOODLE_INTERNAL to check.
// phpcs:ignore moodle.Files.MoodleInternal.MoodleInternalGlobalState
require_once('PhpAmqpLib/autoload.php');

[, $host, $port, $user, $vhost, $exchange, $bindingkey, $prefix] = $argv + array_fill(0, 8, '');
$password = (string) getenv('RELAY_BROKER_PASSWORD');
$connection = new \PhpAmqpLib\Connection\AMQPStreamConnection($host, (int) $port, $user, $password, $vhost);
$channel = $connection->channel();
[$queue] = $channel->queue_declare('', false, false, true, true);
$channel->queue_bind($queue, $exchange, $bindingkey);
echo "ready\n";
$channel->basic_consume($queue, '', false, true, true, false, function ($message) use ($prefix): void {
    $arrived = microtime(true);
    $event = json_decode($message->getBody(), true);
    $department = (string) ($event['data']['snapshot']['department'] ?? '');
    if (strncmp($department, $prefix, strlen($prefix)) === 0) {
        echo sprintf('%.6f', $arrived), ' ', $department, "\n";
    }
});
while ($channel->is_consuming()) {
    $channel->wait();
}
