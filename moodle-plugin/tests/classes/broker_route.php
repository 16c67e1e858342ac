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

use local_eventrelay\tests\moodle_relay_helper as helper;

/**
 * A test's own exchange and queue on the real broker (queue bound to the test site's events), with the
 * plugin settings that point at them; removed with {@see broker_route::remove()}.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class broker_route {
    /** @var \PhpAmqpLib\Connection\AMQPStreamConnection The test's own connection. */
    private $connection;

    /** @var \PhpAmqpLib\Channel\AMQPChannel Its channel. */
    private $channel;

    /** @var string The exchange. */
    public $exchange;

    /** @var string The queue, bound to test-site.#. */
    public $queue;

    /**
     * Declares a fresh exchange and queue.
     */
    public function __construct() {
        $this->connection = helper::connect();
        $this->channel = $this->connection->channel();
        $this->exchange = helper::random_name('exchange');
        $this->queue = helper::random_name('queue');
        $this->channel->exchange_declare($this->exchange, 'topic', false, true, false);
        $this->channel->queue_declare($this->queue, false, true, false, false);
        $this->channel->queue_bind($this->queue, $this->exchange, helper::SITE_ID . '.#');
    }

    /**
     * Returns the plugin settings that publish to this route with the test broker's guest account.
     *
     * @return array Setting name => value, for {@see moodle_relay_helper::configure()}.
     */
    public function settings(): array {
        return [
            'host' => helper::broker_host(),
            'port' => helper::broker_port(),
            'vhost' => '/',
            'user' => 'guest',
            'password' => 'guest',
            'exchange' => $this->exchange,
        ];
    }

    /**
     * Takes every message from the queue.
     *
     * @return \PhpAmqpLib\Message\AMQPMessage[] The messages, in queue order.
     */
    public function take_all(): array {
        $messages = [];
        while (($message = $this->channel->basic_get($this->queue, true)) !== null) {
            $messages[] = $message;
        }
        return $messages;
    }

    /**
     * Deletes the queue and the exchange and closes the connection.
     *
     * @return void
     */
    public function remove(): void {
        $this->channel->queue_delete($this->queue);
        $this->channel->exchange_delete($this->exchange);
        $this->channel->close();
        $this->connection->close();
    }
}
