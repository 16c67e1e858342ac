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

use local_eventrelay\tests\relay_validator;

/**
 * The builder against the shared contract: every valid fixture is rebuilt from Moodle-shaped input.
 *
 * Each fixture is turned back into what Moodle would hand the observer (get_data() with numeric strings,
 * a DB-row-like snapshot in another column order with columns the contract must not carry), built again
 * with the fixture's id and sequence, and compared with the fixture.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\envelope_builder
 * @covers     \local_eventrelay\core\snapshot
 * @covers     \local_eventrelay\core\event_types
 */
class fixtures_test extends \PHPUnit\Framework\TestCase {
    /**
     * @var array Fixture file in schemas/fixtures/valid => user fields the admin allows (null: the default).
     */
    public const FIXTURES = [
        'user.created.json' => null,
        'user.updated.json' => null,
        'user.updated-suspended.json' => ['suspended'],
        'user.deleted.json' => null,
        'enrolment.created.json' => null,
        'enrolment.created-backfill.json' => null,
        'enrolment.updated.json' => null,
        'enrolment.deleted.json' => null,
        'role.assigned.json' => null,
        'role.assigned-system.json' => null,
        'role.unassigned.json' => null,
        'cohort.member_added.json' => null,
        'cohort.member_removed.json' => null,
        'completion.course_completed.json' => null,
        'completion.module_updated.json' => null,
    ];

    /**
     * @var string[] Fixtures whose `time` has sub-second precision, which other producers may give but
     * the builder cannot (Moodle's timecreated is in whole seconds). They are compared with `time` taken
     * from the fixture; the test fails if such a fixture's time ever equals timecreated exactly.
     */
    public const TIME_NOT_FROM_TIMECREATED = [
        'user.updated-suspended.json',
    ];

    /**
     * Reads a valid fixture as arrays.
     *
     * @param string $name File name in schemas/fixtures/valid.
     * @return array The decoded fixture.
     */
    private static function fixture(string $name): array {
        $path = relay_validator::repository_root() . '/schemas/fixtures/valid/' . $name;
        return json_decode(file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
    }

    /**
     * Turns values into what Moodle's DB layer returns: ints as decimal strings, booleans as "1"/"0".
     *
     * @param mixed $value A decoded JSON value.
     * @return mixed The same value with every int and bool turned into a string.
     */
    private static function as_db_strings($value) {
        if (is_array($value)) {
            return array_map([self::class, 'as_db_strings'], $value);
        }
        if (is_bool($value)) {
            return $value ? '1' : '0';
        }
        if (is_int($value)) {
            return (string) $value;
        }
        return $value;
    }

    /**
     * Makes the get_data() array Moodle would give for a fixture, with keys in Moodle's order.
     *
     * @param array $fixture The decoded fixture.
     * @return array What `$event->get_data()` returns, numeric values as strings.
     */
    private static function event_data(array $fixture): array {
        $data = $fixture['data'];
        $classparts = explode('_', substr($fixture['moodleevent'], strlen('\\core\\event\\')));
        $eventdata = [
            'eventname' => $fixture['moodleevent'],
            'component' => 'core',
            'action' => array_pop($classparts),
            'target' => implode('_', $classparts),
            'objecttable' => 'irrelevant',
            'objectid' => $data['objectid'],
            'crud' => $data['crud'],
            'edulevel' => 0,
            'contextid' => $data['contextid'],
        ];
        // Fixtures without these stand for events whose builder input lacked them.
        foreach (['contextlevel', 'contextinstanceid'] as $field) {
            if (array_key_exists($field, $data)) {
                $eventdata[$field] = $data[$field];
            }
        }
        $eventdata += [
            'userid' => $data['userid'],
            'courseid' => $data['courseid'],
            'relateduserid' => $data['relateduserid'],
            'anonymous' => $data['anonymous'],
            'other' => $data['other'],
            'timecreated' => $data['timecreated'],
        ];
        return self::as_db_strings($eventdata);
    }

    /**
     * Makes the snapshot row the plugin would pass for a fixture: the fixture's snapshot as DB strings,
     * in reverse column order, plus columns that must not reach the event.
     *
     * @param array $fixture The decoded fixture.
     * @param string[]|null $allowed The user fields allowed for this fixture.
     * @return array The row.
     */
    private static function snapshot_row(array $fixture, ?array $allowed): array {
        $row = array_reverse(self::as_db_strings($fixture['data']['snapshot']), true);
        $row['password'] = '$2y$10$abcdefghijklmnopqrstuuS0m3H4sh/ForTest1ng0nlyXYZ0123';
        $row['secret'] = 'r4nd0m';
        if (snapshot::kind_for_type($fixture['type']) === snapshot::KIND_USER) {
            $row['lastip'] = '192.0.2.7';
            // Every schema field the admin did not allow is present in the row, and must be left out.
            $allowed = $allowed ?? snapshot::DEFAULT_USER_FIELDS;
            foreach (snapshot::FIELDS[snapshot::KIND_USER] as $field => $cast) {
                if ($field !== 'id' && !in_array($field, $allowed, true) && !array_key_exists($field, $row)) {
                    $row[$field] = $cast === cast::STRING ? 'not-allowed' : '1';
                }
            }
            $row['middlename'] = null;
        } else {
            $row['modifierid'] = '2';
            $row['sortorder'] = '0';
        }
        return $row;
    }

    /**
     * Builds the envelope of a fixture from Moodle-shaped input.
     *
     * @param string $name Fixture file name.
     * @return array [fixture as arrays, built envelope]
     */
    public static function rebuild(string $name): array {
        $fixture = self::fixture($name);
        $allowed = self::FIXTURES[$name];
        $builder = new envelope_builder($fixture['moodlesite'], $fixture['source'], $allowed);
        $built = $builder->build(
            self::event_data($fixture),
            self::snapshot_row($fixture, $allowed),
            (int) $fixture['sequence'],
            $fixture['id'],
            $fixture['data']['backfill'] ?? false
        );
        return [$fixture, $built];
    }

    /**
     * Data provider: the fixtures to rebuild.
     *
     * @return array[] [fixture file name]
     */
    public static function fixture_provider(): array {
        $cases = [];
        foreach (array_keys(self::FIXTURES) as $name) {
            $cases[$name] = [$name];
        }
        return $cases;
    }

    /**
     * The fixtures cover all 12 types, and every fixture the builder can make (no enrichment, no trace) is listed.
     *
     * @return void
     */
    public function test_fixtures_cover_every_type(): void {
        $types = [];
        foreach (array_keys(self::FIXTURES) as $name) {
            $types[] = self::fixture($name)['type'];
        }
        $this->assertEqualsCanonicalizing(event_types::all_types(), array_values(array_unique($types)));
        $this->assertCount(12, array_unique($types));

        $buildable = [];
        foreach (glob(relay_validator::repository_root() . '/schemas/fixtures/valid/*.json') as $path) {
            $fixture = json_decode(file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
            if (!isset($fixture['data']['enrichment']) && !isset($fixture['traceparent'])) {
                $buildable[] = basename($path);
            }
        }
        $this->assertEqualsCanonicalizing($buildable, array_keys(self::FIXTURES));
    }

    /**
     * A fixture rebuilt from Moodle-shaped input equals the fixture, types and key order included.
     *
     * @dataProvider fixture_provider
     * @param string $name Fixture file name.
     * @return void
     */
    public function test_rebuilds_fixture_exactly(string $name): void {
        [$fixture, $built] = self::rebuild($name);

        $expectedtime = gmdate('Y-m-d\TH:i:s\Z', $fixture['data']['timecreated']);
        $this->assertSame($expectedtime, $built['time'], 'time must be data.timecreated in RFC 3339 UTC');
        if (in_array($name, self::TIME_NOT_FROM_TIMECREATED, true)) {
            $this->assertNotSame(
                $fixture['time'],
                $built['time'],
                "{$name}: its time now matches timecreated; remove it from TIME_NOT_FROM_TIMECREATED"
            );
            $built['time'] = $fixture['time'];
        }

        // Same values, same PHP types (42 is not "42"), same key order.
        $this->assertSame($fixture, $built);
        // The JSON says the same, with objects as objects ({} is not []).
        $json = json_encoder::encode($built);
        $this->assertSame($fixture, json_decode($json, true, 512, JSON_THROW_ON_ERROR));
        $fixtureobjects = json_decode(file_get_contents(
            relay_validator::repository_root() . '/schemas/fixtures/valid/' . $name
        ));
        $this->assertEquals($fixtureobjects, json_decode($json, false, 512, JSON_THROW_ON_ERROR));
        $this->assertStringNotContainsString('password', $json);
        $this->assertStringNotContainsString('not-allowed', $json);
    }

    /**
     * Every rebuilt fixture, and every one with a fresh id and another sequence, passes the Rust validator.
     *
     * @return void
     */
    public function test_rebuilt_fixtures_pass_the_validator(): void {
        $envelopes = [];
        foreach (array_keys(self::FIXTURES) as $name) {
            [$fixture, $built] = self::rebuild($name);
            $envelopes[$name] = $built;
            $builder = new envelope_builder('site-2', 'http://localhost:8080/moodle', self::FIXTURES[$name]);
            $fresh = $builder->build(self::event_data($fixture), self::snapshot_row($fixture, self::FIXTURES[$name]));
            $envelopes["{$name} (fresh)"] = sequence::with_sequence($fresh, PHP_INT_MAX);
        }
        relay_validator::assert_all_valid($envelopes);
    }
}
