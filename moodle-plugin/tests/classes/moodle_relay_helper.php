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

namespace local_eventrelay\tests;

use PhpAmqpLib\Connection\AMQPStreamConnection;

/**
 * Helpers of the plugin's Moodle PHPUnit tests: configuration, outbox reads, the Rust validator, a test
 * exchange on the real RabbitMQ.
 *
 * Environment: RELAY_WORKER_BIN (path to relay-worker, for validation), RELAY_TEST_AMQP_HOST and
 * RELAY_TEST_AMQP_PORT (default 127.0.0.1:5672, user guest/guest).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class moodle_relay_helper {
    /** @var string Site id the tests record events for. */
    public const SITE_ID = 'test-site';

    /**
     * Configures the plugin to record every event type, without a broker.
     *
     * @param array $settings More settings (name => value).
     * @return void
     */
    public static function configure(array $settings = []): void {
        $settings += ['siteid' => self::SITE_ID, 'events' => '', 'host' => ''];
        foreach ($settings as $name => $value) {
            set_config($name, $value, 'local_eventrelay');
        }
        \local_eventrelay\observer::reset_for_tests();
    }

    /**
     * Ends the "request" as far as the plugin is concerned: the rows it buffered are written.
     *
     * @return void
     */
    public static function end_request(): void {
        \local_eventrelay\local\outbox_writer::instance()->flush();
    }

    /**
     * Returns the outbox rows, ascending id, after writing the rows the request has buffered (as the end of
     * the request would).
     *
     * @return \stdClass[] The rows.
     */
    public static function rows(): array {
        global $DB;
        self::end_request();
        return array_values($DB->get_records('local_eventrelay_outbox', null, 'id ASC'));
    }

    /**
     * Returns the message body the drain would publish for an outbox row.
     *
     * @param \stdClass $row The row, as read from the outbox.
     * @return string The JSON body, sequence set.
     */
    public static function body(\stdClass $row): string {
        $config = \local_eventrelay\local\config::load();
        return \local_eventrelay\core\outbox_row::from_record($row)->body([$config, 'builder_for_site']);
    }

    /**
     * Returns the relay-worker binary, or null when RELAY_WORKER_BIN does not name one.
     *
     * @return string|null The path.
     */
    public static function validator(): ?string {
        $bin = getenv('RELAY_WORKER_BIN');
        return $bin && is_executable($bin) ? $bin : null;
    }

    /**
     * Validates JSON events with `relay-worker validate --json -`.
     *
     * @param string[] $bodies One JSON document each, without new lines.
     * @return array[] One verdict per event: {"input","ok","code","reason"}.
     */
    public static function validate(array $bodies): array {
        $bin = self::validator();
        $process = proc_open(
            [$bin, 'validate', '--json', '-'],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes
        );
        fwrite($pipes[0], implode("\n", $bodies) . "\n");
        fclose($pipes[0]);
        $out = stream_get_contents($pipes[1]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        proc_close($process);
        $verdicts = [];
        foreach (preg_split('/\R/', trim((string) $out)) as $line) {
            if ($line !== '') {
                $verdicts[] = json_decode($line, true);
            }
        }
        return $verdicts;
    }

    /**
     * Opens a connection to the test broker.
     *
     * @return AMQPStreamConnection The connection.
     */
    public static function connect(): AMQPStreamConnection {
        \local_eventrelay\core\amqp_library::require();
        return new AMQPStreamConnection(self::broker_host(), self::broker_port(), 'guest', 'guest', '/');
    }

    /**
     * Returns the test broker's host.
     *
     * @return string The host.
     */
    public static function broker_host(): string {
        return getenv('RELAY_TEST_AMQP_HOST') ?: '127.0.0.1';
    }

    /**
     * Returns the test broker's port.
     *
     * @return int The port.
     */
    public static function broker_port(): int {
        return (int) (getenv('RELAY_TEST_AMQP_PORT') ?: 5672);
    }

    /**
     * Makes a name no other test run uses (never moodle.* or relay.*).
     *
     * @param string $what "exchange" or "queue".
     * @return string The name.
     */
    public static function random_name(string $what): string {
        return "test.eventrelay.moodle.{$what}." . bin2hex(random_bytes(6));
    }
}
