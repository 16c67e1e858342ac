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

namespace local_eventrelay\core;

use local_eventrelay\tests\memory_outbox_store;
use local_eventrelay\tests\test_broker;

/**
 * The publisher against the real RabbitMQ: confirms, properties, returns of unroutable messages, and
 * what happens when the broker cannot be used.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\publisher
 * @covers     \local_eventrelay\core\outbox_row
 * @covers     \local_eventrelay\core\connection_settings
 */
class publisher_test extends \PHPUnit\Framework\TestCase {
    /** @var test_broker|null The test's exchange and queues. */
    private $broker = null;

    /**
     * Makes a fresh exchange on the real broker.
     *
     * @return void
     */
    protected function setUp(): void {
        $this->broker = new test_broker();
    }

    /**
     * Deletes the test's exchange and queues.
     *
     * @return void
     */
    protected function tearDown(): void {
        $this->broker->cleanup();
        $this->broker = null;
    }

    /**
     * Confirmed rows arrive with the contract's properties and their sequence set to the row id.
     *
     * @return void
     */
    public function test_publish_is_confirmed_with_contract_properties(): void {
        $queue = $this->broker->queue('site-a.#');
        $store = new memory_outbox_store();
        $rows = $store->add_user_updates(3, 'site-a');
        $publisher = new publisher($this->broker->publisher_settings());

        $before = time();
        $result = $publisher->publish($rows);
        $publisher->close();

        $this->assertSame([1, 2, 3], $result->confirmed);
        $this->assertSame([], $result->failed);
        $messages = $this->broker->take_all($queue);
        $this->assertCount(3, $messages);
        foreach ($messages as $i => $message) {
            $row = $rows[$i];
            $this->assertSame($row->eventid, $message->get('message_id'));
            $this->assertSame('application/cloudevents+json', $message->get('content_type'));
            $this->assertSame(2, $message->get('delivery_mode'));
            $this->assertSame('moodle.user.updated', $message->get('type'));
            $this->assertSame('local_eventrelay', $message->get('app_id'));
            $this->assertGreaterThanOrEqual($before, $message->get('timestamp'));
            $this->assertSame('site-a.user.updated', $message->getRoutingKey());
            $body = json_decode($message->getBody(), true);
            $stored = json_decode($row->envelope, true);
            $this->assertSame('00000000000000000000', $stored['sequence']);
            $this->assertSame(sequence::format($row->id), $body['sequence']);
            $stored['sequence'] = $body['sequence'];
            $this->assertSame($stored, $body, 'Only the sequence differs from what was observed');
        }
    }

    /**
     * A mandatory message no queue takes comes back: that row fails, the others of the batch are confirmed.
     *
     * @return void
     */
    public function test_unroutable_rows_are_returned_and_not_confirmed(): void {
        $queue = $this->broker->queue('site-a.user.*');
        $store = new memory_outbox_store();
        $rows = $store->add_user_updates(3, 'site-a');
        $rows[1]->routingkey = 'site-a.enrolment.created';
        $publisher = new publisher($this->broker->publisher_settings());

        $result = $publisher->publish($rows);

        $this->assertSame([1, 3], $result->confirmed);
        $this->assertSame([2], array_keys($result->failed));
        $this->assertStringContainsString('312 NO_ROUTE', $result->failed[2]);
        $this->assertCount(2, $this->broker->take_all($queue));

        // The channel is still usable after a return.
        $again = $publisher->publish([$rows[0]]);
        $this->assertSame([1], $again->confirmed);
        $publisher->close();
    }

    /**
     * A missing exchange closes the channel: the whole batch fails and the next batch reconnects.
     *
     * @return void
     */
    public function test_missing_exchange_fails_the_batch(): void {
        $store = new memory_outbox_store();
        $rows = $store->add_user_updates(2, 'site-a');
        $settings = $this->broker->publisher_settings()->with_exchange(test_broker::random_name('absent'));
        $publisher = new publisher($settings);
        try {
            $publisher->publish($rows);
            $this->fail('Publishing to a missing exchange must fail');
        } catch (publish_exception $e) {
            $this->assertStringContainsString('NOT_FOUND', $e->getMessage());
        }
        $this->expectException(publish_exception::class);
        $publisher->ping();
    }

    /**
     * A closed port or a wrong password fail with a message that never holds the password.
     *
     * @return void
     */
    public function test_connection_failures_never_reveal_the_password(): void {
        $base = test_broker::settings();
        $secret = 'Sup3r-S3cret-' . bin2hex(random_bytes(4));
        $wrongpassword = new connection_settings(
            $base->host,
            $base->port,
            '/',
            'guest',
            $secret,
            false,
            $this->broker->exchange,
            2.0,
            2.0
        );
        $cases = [
            'closed port' => $wrongpassword->with_port(test_broker::closed_port()),
            'wrong password' => $wrongpassword,
        ];
        $store = new memory_outbox_store();
        $rows = $store->add_user_updates(1, 'site-a');
        foreach ($cases as $label => $settings) {
            $publisher = new publisher($settings);
            try {
                $publisher->publish($rows);
                $this->fail("{$label}: publishing must fail");
            } catch (publish_exception $e) {
                $this->assertStringStartsWith('Cannot connect to amqp://guest@', $e->getMessage(), $label);
                $this->assertStringNotContainsString($secret, $e->getMessage(), $label);
                // What a developer dumping the settings would see.
                $dump = print_r($settings, true); // phpcs:ignore moodle.PHP.ForbiddenFunctions.Found
                $this->assertStringNotContainsString($secret, $dump, $label);
            }
        }
    }

    /**
     * Ping succeeds against an existing exchange.
     *
     * @return void
     */
    public function test_ping(): void {
        $publisher = new publisher($this->broker->publisher_settings());
        $publisher->ping();
        $publisher->close();
        $this->addToAssertionCount(1);
    }

    /**
     * Redaction removes the password, URL credentials, and cuts long texts.
     *
     * @return void
     */
    public function test_redact(): void {
        $settings = new connection_settings('h', 5672, '/', 'relay', 'p@ss word');
        $this->assertSame('bad [redacted] and [redacted]', $settings->redact('bad p@ss word and p%40ss%20word'));
        $this->assertSame('amqp://relay:[redacted]@h:5672/', $settings->redact('amqp://relay:other@h:5672/'));
        $this->assertSame(1024, strlen($settings->redact(str_repeat('x', 5000))));
        $this->assertSame('amqp://relay@h:5672/%2F', $settings->describe());
    }
}
