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

namespace local_eventrelay;

use local_eventrelay\local\drain_signal;
use local_eventrelay\local\follower;
use local_eventrelay\local\outbox_drain;
use local_eventrelay\local\outbox_writer;
use local_eventrelay\local\spool_store;
use local_eventrelay\tests\broker_route;
use local_eventrelay\tests\moodle_relay_helper as helper;

/**
 * How rows reach the outbox in a real Moodle: buffered outside transactions, at once inside them, spooled
 * under moodledata when the outbox refuses them, published from there; no broker connection in a request;
 * the drain signalled without queueing a task per request; the follower.
 *
 * Every test here needs real commits, so none runs inside the rolled-back test transaction.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\local\outbox_writer
 * @covers     \local_eventrelay\local\spool_store
 * @covers     \local_eventrelay\local\drain_signal
 * @covers     \local_eventrelay\local\follower
 * @covers     \local_eventrelay\check\spool
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\outbox_writer::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\spool_store::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\drain_signal::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\follower::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\check\spool::class)]
final class outbox_writer_test extends \advanced_testcase {
    /** @var string Name of the constraint that makes every outbox insert fail. */
    public const FAIL_CONSTRAINT = 'local_eventrelay_test_refuse';

    /** @var broker_route The test's own exchange and queue. */
    private $route;

    /** @var \stdClass[] Users to update. */
    private $users = [];

    /** @var bool Whether the failure constraint is in place. */
    private $refusing = false;

    /**
     * Real commits, a fresh exchange and queue, and users to change.
     *
     * @return void
     */
    protected function setUp(): void {
        parent::setUp();
        $this->resetAfterTest();
        $this->preventResetByRollback();
        $this->route = new broker_route();
        helper::configure(['siteid' => '']);
        for ($i = 0; $i < 5; $i++) {
            $this->users[] = $this->getDataGenerator()->create_user();
        }
        helper::configure($this->route->settings());
    }

    /**
     * Removes the failure constraint if a test left it, the spool, the exchange and the queue.
     *
     * @return void
     */
    protected function tearDown(): void {
        $this->allow_inserts();
        remove_dir(spool_store::instance()->spool()->dir());
        $this->route->remove();
        parent::tearDown();
    }

    /**
     * Updates the test users, each once per round, outside any transaction.
     *
     * @param int $count How many updates in all.
     * @return void
     */
    private function update_users(int $count): void {
        for ($i = 0; $i < $count; $i++) {
            $user = $this->users[$i % count($this->users)];
            user_update_user((object) ['id' => $user->id, 'department' => "d{$i}"], false);
        }
    }

    /**
     * Makes every outbox insert fail, as a full disk or a lost connection would (a real database error).
     *
     * @return void
     */
    private function refuse_inserts(): void {
        global $DB;
        $DB->change_database_structure('ALTER TABLE ' . $DB->get_prefix() . 'local_eventrelay_outbox ADD CONSTRAINT '
            . self::FAIL_CONSTRAINT . ' CHECK (id < 0)');
        $this->refusing = true;
    }

    /**
     * Lets outbox inserts succeed again.
     *
     * @return void
     */
    private function allow_inserts(): void {
        global $DB;
        if ($this->refusing) {
            $DB->change_database_structure('ALTER TABLE ' . $DB->get_prefix() . 'local_eventrelay_outbox DROP CONSTRAINT '
                . self::FAIL_CONSTRAINT);
            $this->refusing = false;
        }
    }

    /**
     * Makes changes whose rows the outbox refuses at the end of the request (they go to the spool, with a
     * debugging message), then lets inserts succeed again.
     *
     * @param int $count How many changes.
     * @return void
     */
    private function changes_the_outbox_refuses(int $count): void {
        $this->refuse_inserts();
        $this->update_users($count);
        outbox_writer::instance()->flush();
        $this->assertDebuggingCalled();
        $this->allow_inserts();
    }

    /**
     * Counts the rows in the outbox, without writing what is buffered.
     *
     * @return int The count.
     */
    private function written(): int {
        global $DB;
        return $DB->count_records('local_eventrelay_outbox');
    }


    /**
     * Outside a transaction rows wait for the end of the request, then arrive in one write, in order.
     *
     * @return void
     */
    public function test_rows_of_committed_changes_wait_for_the_flush(): void {
        $this->update_users(3);
        $this->assertSame(0, $this->written(), 'Buffered, not written yet');
        outbox_writer::instance()->flush();
        $rows = helper::rows();
        $this->assertCount(3, $rows);
        $this->assertSame(
            ['moodle.user.updated', 'moodle.user.updated', 'moodle.user.updated'],
            array_column($rows, 'eventtype')
        );
        $this->assertSame(
            array_map(fn($u) => (string) $u->id, array_slice($this->users, 0, 3)),
            array_map(fn($row) => (string) $row->userid, $rows)
        );
    }

    /**
     * A long bulk job does not hold its rows until the end: every BUFFER_ROWS rows are written at once.
     *
     * @return void
     */
    public function test_a_full_buffer_is_written_at_once(): void {
        $this->update_users(outbox_writer::BUFFER_ROWS + 20);
        $this->assertSame(outbox_writer::BUFFER_ROWS, $this->written());
        outbox_writer::instance()->flush();
        $this->assertCount(outbox_writer::BUFFER_ROWS + 20, helper::rows());
    }

    /**
     * Inside a transaction the row is written at once and commits with the change: a committed change
     * relays exactly once, a rolled-back one nothing; the drain is signalled after the commit.
     *
     * @return void
     */
    public function test_a_transaction_carries_its_rows(): void {
        global $DB;
        $transaction = $DB->start_delegated_transaction();
        $this->update_users(1);
        $this->assertSame(1, $this->written(), 'Written inside the transaction');
        $this->assertCount(0, \core\task\manager::get_adhoc_tasks(task\drain_outbox::class), 'Not signalled before the commit');
        $transaction->allow_commit();
        outbox_writer::instance()->flush();
        $this->assertCount(1, helper::rows(), 'Exactly once');
        $this->assertCount(1, \core\task\manager::get_adhoc_tasks(task\drain_outbox::class));

        $transaction = $DB->start_delegated_transaction();
        $this->update_users(2);
        try {
            $transaction->rollback(new \moodle_exception('rollbacktest', 'error'));
        } catch (\moodle_exception $e) {
            $this->assertSame('rollbacktest', $e->errorcode);
        }
        outbox_writer::instance()->flush();
        $this->assertCount(1, helper::rows(), 'Nothing of the rolled-back changes');
    }

    /**
     * The issue's case: the outbox refuses 100 rows. Every event is kept in the spool, the check reports
     * them until they are published, and the next drain publishes all 100.
     *
     * @return void
     */
    public function test_refused_rows_are_spooled_reported_and_published(): void {
        $this->changes_the_outbox_refuses(100);
        $this->assertSame(0, $this->written());
        $store = spool_store::instance();
        $this->assertSame(['spool' => 100, 'outbox' => 0, 'bad' => 0], $store->pending());
        $result = (new check\spool())->get_result();
        $this->assertSame(\core\check\result::WARNING, $result->get_status());
        $this->assertStringContainsString('100', $result->get_summary());
        $spooledids = [];
        foreach ($store->spool()->files() as $file) {
            $spooledids = array_merge($spooledids, array_column($store->spool()->read($file), 'eventid'));
        }

        $result = outbox_drain::run();
        $this->assertSame(100, $result->published);
        $messages = $this->route->take_all();
        $this->assertCount(100, $messages);
        $this->assertEqualsCanonicalizing($spooledids, array_map(fn($m) => $m->get('message_id'), $messages));
        $this->assertSame(['spool' => 0, 'outbox' => 0, 'bad' => 0], $store->pending());
        $this->assertSame(\core\check\result::OK, (new check\spool())->get_result()->get_status());
        $this->assertSame('100', (string) get_config('local_eventrelay', 'spooledtotal'));
    }

    /**
     * Spooled events moved back into the outbox but not yet published (broker down) are still reported.
     *
     * @return void
     */
    public function test_spooled_rows_are_reported_until_published(): void {
        $this->changes_the_outbox_refuses(4);
        set_config('port', 1, 'local_eventrelay');
        $result = outbox_drain::run();
        $this->assertSame(0, $result->published);
        $this->assertSame(['spool' => 0, 'outbox' => 4, 'bad' => 0], spool_store::instance()->pending());
        $this->assertSame(\core\check\result::WARNING, (new check\spool())->get_result()->get_status());
    }

    /**
     * A damaged spool file is set aside by the drain, which goes on; the check says an administrator must look.
     *
     * @return void
     */
    public function test_damaged_spool_file_is_set_aside_and_reported(): void {
        $store = spool_store::instance();
        make_writable_directory($store->spool()->dir());
        file_put_contents($store->spool()->dir() . '/0000000000.000000-damaged.jsonl', "{\"eventid\":\n");
        $this->update_users(2);
        outbox_writer::instance()->flush();
        $result = outbox_drain::run();
        $this->assertSame(2, $result->published);
        $this->assertCount(1, $store->spool()->bad_files());
        $this->assertSame(\core\check\result::ERROR, (new check\spool())->get_result()->get_status());
    }

    /**
     * A Moodle request never talks to the broker: with the broker's address on a listener that counts
     * connections, changes, the end-of-request write and the drain signal open none.
     *
     * @return void
     */
    public function test_a_request_opens_no_broker_connection(): void {
        $listener = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr(strrchr(stream_socket_get_name($listener, false), ':'), 1);
        set_config('port', $port, 'local_eventrelay');
        $this->update_users(outbox_writer::BUFFER_ROWS + 5);
        outbox_writer::instance()->flush();
        $this->assertCount(outbox_writer::BUFFER_ROWS + 5, helper::rows());
        stream_set_blocking($listener, false);
        $this->assertFalse(@stream_socket_accept($listener, 0), 'No connection was made to the broker');
        fclose($listener);
    }

    /**
     * The drain is signalled with one cache read: a queued task is not queued again until it starts, and
     * nothing is queued while a follower is alive.
     *
     * @return void
     */
    public function test_drain_signal_is_cheap_and_deduplicated(): void {
        $tasks = fn() => count(\core\task\manager::get_adhoc_tasks(task\drain_outbox::class));
        drain_signal::poke();
        drain_signal::poke();
        $this->assertSame(1, $tasks());
        ob_start();
        $this->runAdhocTasks(task\drain_outbox::class);
        ob_end_clean();
        $this->assertSame(0, $tasks());
        drain_signal::poke();
        $this->assertSame(1, $tasks(), 'Queued again once the queued task has started');
        ob_start();
        $this->runAdhocTasks(task\drain_outbox::class);
        ob_end_clean();

        drain_signal::follower_heartbeat();
        $this->assertTrue(drain_signal::follower_alive());
        drain_signal::poke();
        $this->assertSame(0, $tasks(), 'The follower polls: no task');
        drain_signal::follower_stopped();
        drain_signal::poke();
        $this->assertSame(1, $tasks());
    }

    /**
     * The follower publishes what is waiting, keeps a heartbeat while it runs and stops when its time is up.
     * (That a second follower process exits at once is checked by hand: Moodle's PostgreSQL locks are
     * re-entrant within one process.)
     *
     * @return void
     */
    public function test_follower_publishes_what_is_waiting(): void {
        $this->update_users(30);
        outbox_writer::instance()->flush();
        $config = local\config::load();
        $result = (new follower($config))->run(1.0);
        $this->assertSame(30, $result->published);
        $this->assertCount(0, helper::rows());
        $this->assertCount(30, $this->route->take_all());
        $this->assertFalse(drain_signal::follower_alive(), 'Its heartbeat is gone once it stopped');
    }
}
