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

use local_eventrelay\tests\sample_events;

/**
 * What the observer records and the drain builds: the same message as building the envelope at once, and
 * nothing stored that the event may not carry.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\recorded_event
 * @covers     \local_eventrelay\core\outbox_row
 */
final class recorded_event_test extends \PHPUnit\Framework\TestCase {
    /** @var string The event id of every test row. */
    public const ID = '0f8e2f4c-7a6b-4d1e-9c3a-5b2d8e6f1a01';

    /**
     * Returns the builder of a site id, as the drain's settings give it.
     *
     * @param string[]|null $userfields Allowed user fields, null for the default.
     * @return callable Site id => builder.
     */
    private static function builders(?array $userfields = null): callable {
        return fn(string $siteid) => new envelope_builder($siteid, 'https://lms.example.edu', $userfields);
    }

    /**
     * Makes the outbox row of a recorded event.
     *
     * @param string $type CloudEvent type.
     * @param string $json The recorded event.
     * @param int $id Row id (sequence).
     * @return outbox_row The row.
     */
    private static function row(string $type, string $json, int $id = 4711): outbox_row {
        return new outbox_row($id, self::ID, $type, event_types::routing_key('lms-prod', $type), $json);
    }

    /**
     * For every type, with native values and with the numeric strings a database row gives, the body the drain
     * publishes is byte for byte the envelope built at once.
     *
     * @return void
     */
    public function test_the_drain_publishes_what_building_at_once_gives(): void {
        $builder = new envelope_builder('lms-prod', 'https://lms.example.edu');
        foreach (sample_events::one_per_type() as $type => [$eventdata, $snapshot]) {
            $asstrings = array_map(fn($v) => is_int($v) ? (string) $v : $v, $snapshot);
            foreach ([$snapshot, $asstrings, (object) $asstrings] as $row) {
                $json = recorded_event::encode($type, $eventdata, $row, $builder->get_user_fields());
                $this->assertTrue(recorded_event::is_recorded($json), $json);
                $expected = json_encoder::encode($builder->build($eventdata, $row, 4711, self::ID));
                $this->assertSame($expected, self::row($type, $json)->body(self::builders()), $type);
            }
        }
    }

    /**
     * The stored snapshot keeps only the fields the event may carry: no password hash, no secret, no field the
     * admin left out; the id always.
     *
     * @return void
     */
    public function test_only_fields_the_event_may_carry_are_stored(): void {
        [$eventdata, $row] = sample_events::one_per_type()['moodle.user.created'];
        $json = recorded_event::encode('moodle.user.created', $eventdata, $row, ['email']);
        $stored = json_decode($json, true)['snapshot'];
        $this->assertSame(['id', 'email'], array_keys($stored));
        $this->assertStringNotContainsString(sample_events::PASSWORD_HASH, $json);
        $this->assertStringNotContainsString('192.0.2.7', $json);

        [$eventdata, $row] = sample_events::one_per_type()['moodle.completion.course_completed'];
        $json = recorded_event::encode('moodle.completion.course_completed', $eventdata, $row, ['email']);
        $this->assertArrayNotHasKey('reaggregate', json_decode($json, true)['snapshot']);
    }

    /**
     * The event is published under the site id it was recorded with, even after the site id changed.
     *
     * @return void
     */
    public function test_published_under_the_site_id_it_was_recorded_with(): void {
        [$eventdata, $row] = sample_events::one_per_type()['moodle.role.assigned'];
        $json = recorded_event::encode('moodle.role.assigned', $eventdata, $row, []);
        $row = new outbox_row(9, self::ID, 'moodle.role.assigned', 'lms-old.role.assigned', $json);
        $body = json_decode($row->body(self::builders()), true);
        $this->assertSame('lms-old', $body['moodlesite']);
        $this->assertSame('00000000000000000009', $body['sequence']);
        $this->assertSame(self::ID, $body['id']);
    }

    /**
     * A recorded event needs a builder; facts the builder refuses fail that row (the drain keeps it and goes on).
     *
     * @return void
     */
    public function test_without_a_builder_or_with_bad_facts_the_row_is_refused(): void {
        [$eventdata, $row] = sample_events::one_per_type()['moodle.user.updated'];
        $json = recorded_event::encode('moodle.user.updated', $eventdata, $row, []);
        try {
            self::row('moodle.user.updated', $json)->body();
            $this->fail('A recorded event was published without a builder');
        } catch (\UnexpectedValueException $e) {
            $this->assertStringContainsString('recorded event', $e->getMessage());
        }
        $eventdata['crud'] = 'x';
        $json = recorded_event::encode('moodle.user.updated', $eventdata, $row, []);
        $this->expectException(\InvalidArgumentException::class);
        self::row('moodle.user.updated', $json)->body(self::builders());
    }

    /**
     * Text that is not a recorded event is never taken for one.
     *
     * @return void
     */
    public function test_only_the_marker_makes_a_recorded_event(): void {
        $this->assertFalse(recorded_event::is_recorded('{"specversion":"1.0","recorded":1}'));
        $this->assertFalse(recorded_event::is_recorded(' {"recorded":1,"event":{}}'));
        $this->expectException(\InvalidArgumentException::class);
        recorded_event::envelope('{"recorded":1,"event":[]}', new envelope_builder('s', 'https://x.example'), 1, self::ID);
    }
}
