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

use local_eventrelay\local\user_update_snapshot;
use local_eventrelay\tests\moodle_relay_helper as helper;

/**
 * The user_updated snapshot computed from user_update_user()'s own data equals the row read back afterwards.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\local\user_update_snapshot
 * @covers     \local_eventrelay\local\snapshot_reader
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\user_update_snapshot::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\snapshot_reader::class)]
final class user_update_snapshot_test extends \advanced_testcase {
    /**
     * Records every event type.
     *
     * @return void
     */
    protected function setUp(): void {
        parent::setUp();
        $this->resetAfterTest();
        helper::configure(['snapshotfields' => 'username,email,idnumber,auth,firstname,lastname,institution,department,'
            . 'suspended,deleted,confirmed,mnethostid,picture,timecreated,timemodified']);
    }

    /**
     * Returns the snapshot of the newest outbox row.
     *
     * @return array The snapshot.
     */
    private static function last_snapshot(): array {
        $rows = helper::rows();
        return json_decode(helper::body(end($rows)), true)['data']['snapshot'];
    }

    /**
     * Returns the snapshot a fresh read of the user row gives.
     *
     * @param int $userid The user.
     * @return array The snapshot.
     */
    private static function read_snapshot(int $userid): array {
        global $DB;
        $builder = local\config::load()->builder();
        $row = (array) $DB->get_record('user', ['id' => $userid]);
        return \local_eventrelay\core\snapshot::make(
            \local_eventrelay\core\snapshot::KIND_USER,
            $row,
            $builder->get_user_fields()
        );
    }

    /**
     * Several kinds of change (text, numbers given as strings and ints, a field cleaned by Moodle, no change at
     * all): the computed snapshot is the row Moodle wrote.
     *
     * @return void
     */
    public function test_computed_snapshot_equals_the_row_written(): void {
        $user = $this->getDataGenerator()->create_user(['department' => 'Before', 'institution' => 'Old']);
        $changes = [
            ['department' => 'After', 'firstname' => 'Zoë'],
            ['suspended' => 1, 'idnumber' => 'E-42'],
            ['suspended' => '0', 'email' => 'new@example.com'],
            ['lastname' => "Tab\tand <b>tags</b>"],
            ['department' => 'After'],
            [],
        ];
        foreach ($changes as $i => $change) {
            $this->waitForSecond();
            user_update_user((object) (['id' => $user->id] + $change), false);
            if (isset($change['lastname'])) {
                // Moodle cleans the tags out and says so.
                $this->assertDebuggingCalled();
            }
            $computed = self::last_snapshot();
            $read = self::read_snapshot($user->id);
            $this->assertSame($read, $computed, "Change {$i}: " . json_encode($change));
        }
    }

    /**
     * A user_updated event that does not come from user_update_user() reads the row: a change made
     * directly (the picture, as the profile form does) after an update without event is in the snapshot.
     *
     * @return void
     */
    public function test_other_user_updated_events_read_the_row(): void {
        global $DB;
        $user = $this->getDataGenerator()->create_user();
        user_update_user((object) ['id' => $user->id, 'department' => 'Form'], false, false);
        $DB->set_field('user', 'picture', 1234, ['id' => $user->id]);
        \core\event\user_updated::create_from_userid($user->id)->trigger();
        $snapshot = self::last_snapshot();
        $this->assertSame(1234, $snapshot['picture']);
        $this->assertSame('Form', $snapshot['department']);
        $this->assertNull(user_update_snapshot::take($user->id), 'Nothing left behind');
    }
}
