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

use local_eventrelay\local\outbox_drain;
use local_eventrelay\tests\broker_route;
use local_eventrelay\tests\moodle_relay_helper as helper;

/**
 * The drain inside a real Moodle against the real RabbitMQ: the adhoc task publishes in sequence order and
 * empties the outbox; a down broker keeps the rows; the lock keeps two drains apart; the status checks.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\task\drain_outbox
 * @covers     \local_eventrelay\task\drain_outbox_fallback
 * @covers     \local_eventrelay\local\outbox_drain
 * @covers     \local_eventrelay\local\db_outbox_store
 * @covers     \local_eventrelay\check\broker
 * @covers     \local_eventrelay\check\outbox_age
 * @covers     \local_eventrelay\check\failed_attempts
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\task\drain_outbox::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\task\drain_outbox_fallback::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\outbox_drain::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\db_outbox_store::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\check\broker::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\check\outbox_age::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\check\failed_attempts::class)]
final class drain_test extends \advanced_testcase {
    /** @var broker_route The test's own exchange and queue. */
    private $route;

    /**
     * Makes a fresh exchange and queue and points the plugin at them.
     *
     * @return void
     */
    protected function setUp(): void {
        parent::setUp();
        $this->resetAfterTest();
        // Real commits: the drain is signalled after them, as in production.
        $this->preventResetByRollback();
        $this->route = new broker_route();
        helper::configure(['batchsize' => 7] + $this->route->settings());
    }

    /**
     * Deletes the test's exchange and queue.
     *
     * @return void
     */
    protected function tearDown(): void {
        $this->route->remove();
        parent::tearDown();
    }


    /**
     * The queued adhoc task publishes every row in sequence order, with valid envelopes, and empties the outbox.
     *
     * @return void
     */
    public function test_adhoc_task_publishes_and_empties_the_outbox(): void {
        $generator = $this->getDataGenerator();
        for ($i = 0; $i < 20; $i++) {
            $generator->create_user();
        }
        $rows = helper::rows();
        $this->assertCount(20, $rows);

        ob_start();
        $this->runAdhocTasks(task\drain_outbox::class);
        $output = ob_get_clean();

        $this->assertStringContainsString('20 published, 0 kept in 3 batches', $output);
        $this->assertCount(0, helper::rows());
        $messages = $this->route->take_all();
        $this->assertCount(20, $messages);
        $bodies = [];
        foreach ($messages as $i => $message) {
            $body = json_decode($message->getBody(), true);
            $this->assertSame((int) $rows[$i]->id, (int) $body['sequence'], 'Published in sequence order');
            $this->assertSame($rows[$i]->eventid, $message->get('message_id'));
            $this->assertSame('local_eventrelay', $message->get('app_id'));
            $bodies[] = $message->getBody();
        }
        if (helper::validator() !== null) {
            foreach (helper::validate($bodies) as $verdict) {
                $this->assertTrue($verdict['ok'], $verdict['reason'] ?? '?');
            }
        }
    }

    /**
     * With the broker down the rows stay, with an attempt and an error that never holds the password;
     * the checks report it; a later drain publishes everything.
     *
     * @return void
     */
    public function test_broker_down_keeps_rows(): void {
        $server = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
        fclose($server);
        helper::configure(['host' => '127.0.0.1', 'port' => $port, 'password' => 'Secret-Pw-123']);
        $generator = $this->getDataGenerator();
        for ($i = 0; $i < 3; $i++) {
            $generator->create_user();
        }
        helper::end_request();

        ob_start();
        (new task\drain_outbox_fallback())->execute();
        $output = ob_get_clean();

        $this->assertStringContainsString('broker unavailable', $output);
        $rows = helper::rows();
        $this->assertCount(3, $rows);
        foreach ($rows as $row) {
            $this->assertSame('1', (string) $row->attempts);
            $this->assertStringContainsString('Cannot connect', $row->lasterror);
            $this->assertStringNotContainsString('Secret-Pw-123', $row->lasterror);
            $this->assertStringNotContainsString('Secret-Pw-123', $output);
        }
        $broker = (new check\broker())->get_result();
        $this->assertSame(\core\check\result::ERROR, $broker->get_status());
        $this->assertStringNotContainsString('Secret-Pw-123', $broker->get_summary() . $broker->get_details());
        $failed = (new check\failed_attempts())->get_result();
        $this->assertSame(\core\check\result::WARNING, $failed->get_status());
        $this->assertStringNotContainsString('Secret-Pw-123', $failed->get_details());

        helper::configure(['host' => helper::broker_host(), 'port' => helper::broker_port(), 'password' => 'guest']);
        $result = outbox_drain::run();
        $this->assertSame(3, $result->published);
        $this->assertCount(0, helper::rows());
        $this->assertCount(3, $this->route->take_all());
        $this->assertSame(\core\check\result::OK, (new check\failed_attempts())->get_result()->get_status());
        $this->assertSame(\core\check\result::OK, (new check\broker())->get_result()->get_status());
    }

    /**
     * While one drain holds the lock another publishes nothing.
     *
     * PostgreSQL's advisory locks (Moodle's default there) only exclude other processes, and this test has
     * one process; the database record lock factory also excludes a second holder in the same process.
     *
     * @return void
     */
    public function test_lock_keeps_two_drains_apart(): void {
        global $CFG;
        $CFG->lock_factory = '\\core\\lock\\db_record_lock_factory';
        $this->getDataGenerator()->create_user();
        $factory = \core\lock\lock_config::get_lock_factory('local_eventrelay');
        $lock = $factory->get_lock(outbox_drain::LOCK_RESOURCE, 0);
        $this->assertNotFalse($lock);
        try {
            $this->assertNull(outbox_drain::run(0));
            $this->assertCount(1, helper::rows());
            $this->assertCount(0, $this->route->take_all());
        } finally {
            $lock->release();
        }
        $this->assertSame(1, outbox_drain::run(0)->published);
    }

    /**
     * The outbox age check warns and fails by the configured thresholds.
     *
     * @return void
     */
    public function test_outbox_age_check(): void {
        global $DB;
        $check = new check\outbox_age();
        $this->assertSame(\core\check\result::OK, $check->get_result()->get_status());
        $this->getDataGenerator()->create_user();
        helper::end_request();
        $this->assertSame(\core\check\result::OK, $check->get_result()->get_status());
        $DB->set_field('local_eventrelay_outbox', 'timecreated', time() - 700);
        $this->assertSame(\core\check\result::WARNING, $check->get_result()->get_status());
        $DB->set_field('local_eventrelay_outbox', 'timecreated', time() - 4000);
        $this->assertSame(\core\check\result::ERROR, $check->get_result()->get_status());
        $names = array_map(function (\core\check\check $check): string {
            return $check->get_ref();
        }, \core\check\manager::get_checks('status'));
        $this->assertContains('local_eventrelay_broker', $names);
        $this->assertContains('local_eventrelay_outbox_age', $names);
        $this->assertContains('local_eventrelay_failed_attempts', $names);
        $this->assertContains('local_eventrelay_spool', $names);
    }
}
