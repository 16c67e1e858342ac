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

use local_eventrelay\core\connection_settings;
use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Message\AMQPMessage;

/**
 * The real RabbitMQ the tests use (127.0.0.1:5672, guest/guest, or RELAY_TEST_AMQP_HOST/PORT), with a fresh
 * exchange and queues per test that are deleted afterwards. Never touches moodle.* or relay.* objects.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class test_broker {
    /** @var AMQPStreamConnection The test's own connection (not the publisher's). */
    private $connection;

    /** @var AMQPChannel Its channel. */
    private $channel;

    /** @var string The test's exchange. */
    public $exchange;

    /** @var string[] Queues declared by the test. */
    private $queues = [];

    /**
     * Connects and declares a fresh topic exchange.
     */
    public function __construct() {
        \local_eventrelay\core\amqp_library::require();
        $settings = self::settings();
        $this->connection = new AMQPStreamConnection(
            $settings->host,
            $settings->port,
            $settings->user,
            $settings->get_password(),
            $settings->vhost
        );
        $this->channel = $this->connection->channel();
        $this->exchange = self::random_name('exchange');
        // Durable like moodle.ingest; deleted in cleanup().
        $this->channel->exchange_declare($this->exchange, 'topic', false, true, false);
    }

    /**
     * Returns the broker settings for the tests, publishing to no exchange yet.
     *
     * @return connection_settings The settings.
     */
    public static function settings(): connection_settings {
        $host = getenv('RELAY_TEST_AMQP_HOST') ?: '127.0.0.1';
        $port = (int) (getenv('RELAY_TEST_AMQP_PORT') ?: 5672);
        return new connection_settings($host, $port, '/', 'guest', 'guest', false, '', 3.0, 10.0);
    }

    /**
     * Returns the settings to publish to this test's exchange.
     *
     * @return connection_settings The settings.
     */
    public function publisher_settings(): connection_settings {
        return self::settings()->with_exchange($this->exchange);
    }

    /**
     * Makes a name no other test run uses.
     *
     * @param string $what "exchange" or "queue".
     * @return string E.g. "test.eventrelay.queue.1a2b3c4d5e6f".
     */
    public static function random_name(string $what): string {
        return "test.eventrelay.{$what}." . bin2hex(random_bytes(6));
    }

    /**
     * Declares a queue bound to the test's exchange.
     *
     * @param string $bindingkey E.g. "site.#".
     * @return string The queue name.
     */
    public function queue(string $bindingkey): string {
        $queue = self::random_name('queue');
        $this->channel->queue_declare($queue, false, true, false, false);
        $this->channel->queue_bind($queue, $this->exchange, $bindingkey);
        $this->queues[] = $queue;
        return $queue;
    }

    /**
     * Takes every message from a queue, in queue order.
     *
     * @param string $queue The queue.
     * @return AMQPMessage[] The messages.
     */
    public function take_all(string $queue): array {
        $messages = [];
        while (($message = $this->channel->basic_get($queue, true)) !== null) {
            $messages[] = $message;
        }
        return $messages;
    }

    /**
     * Deletes the exchange and queues and closes the connection.
     *
     * @return void
     */
    public function cleanup(): void {
        foreach ($this->queues as $queue) {
            $this->channel->queue_delete($queue);
        }
        $this->channel->exchange_delete($this->exchange);
        $this->channel->close();
        $this->connection->close();
    }

    /**
     * Returns a TCP port on 127.0.0.1 where nothing listens.
     *
     * @return int The port.
     */
    public static function closed_port(): int {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $name = stream_socket_get_name($server, false);
        fclose($server);
        return (int) substr($name, strrpos($name, ':') + 1);
    }
}
