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
 * The drainer against the real RabbitMQ: order, exactly-once deletion, and rows kept when the broker fails.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\drainer
 * @covers     \local_eventrelay\core\drain_result
 */
class drainer_test extends \PHPUnit\Framework\TestCase {
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
     * 1,000 rows are published in sequence order, each exactly once, in batches of 200, and the outbox empties.
     *
     * @return void
     */
    public function test_thousand_rows_drain_in_order_exactly_once(): void {
        $queue = $this->broker->queue('site-b.#');
        $store = new memory_outbox_store();
        $store->add_user_updates(1000, 'site-b');
        $lines = [];
        $drainer = new drainer(
            $store,
            new publisher($this->broker->publisher_settings()),
            200,
            function (string $line) use (&$lines): void {
                $lines[] = $line;
            }
        );

        $result = $drainer->drain();

        $this->assertSame(1000, $result->published);
        $this->assertSame(0, $result->failed);
        $this->assertSame(5, $result->batches);
        $this->assertSame('empty', $result->stopreason);
        $this->assertCount(5, $lines);
        $this->assertSame([], $store->rows);
        $this->assertSame(range(1, 1000), $store->deleted);
        $messages = $this->broker->take_all($queue);
        $this->assertCount(1000, $messages);
        $sequences = [];
        $ids = [];
        foreach ($messages as $message) {
            $body = json_decode($message->getBody(), true);
            $sequences[] = $body['sequence'];
            $ids[$body['id']] = true;
        }
        $expected = array_map([sequence::class, 'format'], range(1, 1000));
        $this->assertSame($expected, $sequences, 'Published in sequence order');
        $this->assertCount(1000, $ids, 'Each event exactly once');
    }

    /**
     * With the broker unreachable every row stays, with one attempt and the (redacted) error; a later drain
     * against the broker publishes them all.
     *
     * @return void
     */
    public function test_broker_down_keeps_rows_then_drains(): void {
        $queue = $this->broker->queue('site-c.#');
        $store = new memory_outbox_store();
        $store->add_user_updates(450, 'site-c');
        $secret = 'pw-' . bin2hex(random_bytes(4));
        $base = test_broker::settings();
        $down = new connection_settings(
            $base->host,
            test_broker::closed_port(),
            '/',
            'guest',
            $secret,
            false,
            $this->broker->exchange,
            2.0,
            2.0
        );

        $result = (new drainer($store, new publisher($down), 200))->drain();

        $this->assertSame(0, $result->published);
        $this->assertSame('broker', $result->stopreason);
        $this->assertSame(1, $result->batches, 'A down broker stops the run after one batch');
        $this->assertCount(450, $store->rows);
        $this->assertCount(200, $store->lasterrors);
        foreach ($store->lasterrors as $id => $error) {
            $this->assertSame(1, $store->rows[$id]->attempts);
            $this->assertStringContainsString('Cannot connect', $error);
            $this->assertStringNotContainsString($secret, $error);
        }
        $this->assertSame([], $this->broker->take_all($queue));

        $result = (new drainer($store, new publisher($this->broker->publisher_settings()), 200))->drain();

        $this->assertSame(450, $result->published);
        $this->assertSame([], $store->rows);
        $this->assertCount(450, $this->broker->take_all($queue));
    }

    /**
     * Returned rows stay with their error and the drain goes on past them; a batch where nothing is
     * confirmed stops the run.
     *
     * @return void
     */
    public function test_refused_rows_stay_and_do_not_block_the_rest(): void {
        $queue = $this->broker->queue('site-d.user.*');
        $store = new memory_outbox_store();
        $store->add_user_updates(10, 'site-d');
        $store->rows[3]->routingkey = 'site-d.cohort.member_added';
        $store->rows[7]->routingkey = 'site-d.cohort.member_added';

        $result = (new drainer($store, new publisher($this->broker->publisher_settings()), 4))->drain();

        $this->assertSame(8, $result->published);
        $this->assertSame(2, $result->failed);
        $this->assertSame([3, 7], array_keys($store->rows));
        $this->assertStringContainsString('NO_ROUTE', $store->lasterrors[3]);
        $this->assertCount(8, $this->broker->take_all($queue));

        // Only the two refused rows are left: the single batch confirms nothing, so the run stops.
        $result = (new drainer($store, new publisher($this->broker->publisher_settings()), 4))->drain();
        $this->assertSame('refused', $result->stopreason);
        $this->assertSame(2, $store->rows[3]->attempts);
    }

    /**
     * maxrows bounds a run.
     *
     * @return void
     */
    public function test_maxrows_bounds_a_run(): void {
        $queue = $this->broker->queue('site-e.#');
        $store = new memory_outbox_store();
        $store->add_user_updates(25, 'site-e');

        $result = (new drainer($store, new publisher($this->broker->publisher_settings()), 10))->drain(15);

        $this->assertSame(15, $result->published);
        $this->assertSame('maxrows', $result->stopreason);
        $this->assertSame(range(16, 25), array_keys($store->rows));
        $this->assertCount(15, $this->broker->take_all($queue));
    }
}
