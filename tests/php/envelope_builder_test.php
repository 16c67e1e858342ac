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
use local_eventrelay\tests\sample_events;

/**
 * Tests of the envelope builder's rules: site configuration, ids, sequence, snapshots, subject, JSON.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\envelope_builder
 * @covers     \local_eventrelay\core\site_validator
 * @covers     \local_eventrelay\core\sequence
 * @covers     \local_eventrelay\core\json_encoder
 * @covers     \local_eventrelay\core\other_caster
 * @covers     \local_eventrelay\core\subject
 */
class envelope_builder_test extends \PHPUnit\Framework\TestCase {
    /**
     * Returns a builder for the usual test site.
     *
     * @param string[]|null $userfields Allowed user fields, null for the default.
     * @return envelope_builder The builder.
     */
    private static function builder(?array $userfields = null): envelope_builder {
        return new envelope_builder('lms-prod', 'https://lms.example.edu', $userfields);
    }

    /**
     * Every kind of built event passes the shared schemas through the Rust validator.
     *
     * @return void
     */
    public function test_built_events_pass_the_validator(): void {
        $builder = self::builder();
        $all = self::builder(snapshot::user_field_names());
        $envelopes = [];
        foreach (sample_events::one_per_type() as $type => [$eventdata, $row]) {
            $built = $builder->build($eventdata, $row, 1000);
            $this->assertSame($type, $built['type']);
            $envelopes[$type] = $built;
            $envelopes["{$type} backfill"] = $builder->build($eventdata, (object) $row, 1001, null, true);
            $envelopes["{$type} all fields"] = $all->build($eventdata, $row, 1002);
            $envelopes["{$type} resequenced"] = sequence::with_sequence($built, 1003);
        }
        $envelopes['id only'] = self::builder([])->build(sample_events::user_event(), sample_events::user_row());
        $envelopes['null other'] = $builder->build(sample_events::user_event('updated', null), sample_events::user_row());
        relay_validator::assert_all_valid($envelopes);
    }

    /**
     * The harness really reports invalid events (so that "all ok" above means something).
     *
     * @return void
     */
    public function test_validator_harness_reports_invalid_events(): void {
        [$eventdata, $row] = sample_events::one_per_type()['moodle.user.created'];
        $good = self::builder()->build($eventdata, $row);
        $withpassword = $good;
        $withpassword['data']['snapshot']['password'] = sample_events::PASSWORD_HASH;
        $wrongtype = $good;
        $wrongtype['type'] = 'moodle.user.updated';
        $verdict = relay_validator::validate(array_map(
            [json_encoder::class, 'encode'],
            [$good, $withpassword, $wrongtype]
        ));
        $this->assertTrue($verdict['results'][0]['ok']);
        $this->assertFalse($verdict['results'][1]['ok']);
        $this->assertSame('schema', $verdict['results'][1]['code']);
        $this->assertStringContainsString('password', $verdict['results'][1]['reason']);
        $this->assertFalse($verdict['results'][2]['ok']);
        $this->assertNotSame(0, $verdict['exitcode']);
    }

    /**
     * A password (or its hash, or any field the schema lacks) never reaches a snapshot, whatever the setting.
     *
     * @return void
     */
    public function test_password_never_in_snapshot(): void {
        $builder = self::builder(['password', 'email', 'lastip', 'secret', 'PASSWORD', ' password ']);
        $this->assertSame(['id', 'email'], $builder->get_user_fields());
        foreach (['created', 'updated', 'deleted'] as $action) {
            $other = $action === 'deleted' ? ['username' => 'x', 'email' => 'y', 'idnumber' => '', 'picture' => '0',
                'mnethostid' => '1'] : null;
            $built = $builder->build(sample_events::user_event($action, $other), sample_events::user_row());
            $this->assertSame(['id' => 42, 'email' => 's.mensah@example.edu'], $built['data']['snapshot']);
            $json = json_encoder::encode($built);
            $this->assertStringNotContainsString('password', $json);
            $this->assertStringNotContainsString(sample_events::PASSWORD_HASH, $json);
            $this->assertStringNotContainsString('192.0.2.7', $json);
        }
        // The default setting carries neither, and nor does "everything the schema knows".
        foreach ([self::builder(), self::builder(snapshot::user_field_names())] as $other) {
            $json = json_encoder::encode($other->build(sample_events::user_event(), sample_events::user_row()));
            $this->assertStringNotContainsString('password', $json);
            $this->assertStringNotContainsString(sample_events::PASSWORD_HASH, $json);
        }
    }

    /**
     * User snapshots carry exactly the allowed fields plus id, in the schema's order; the default set is as documented.
     *
     * @return void
     */
    public function test_user_snapshot_fields(): void {
        $built = self::builder()->build(sample_events::user_event(), sample_events::user_row());
        $this->assertSame([
            'id' => 42, 'username' => 's.mensah', 'email' => 's.mensah@example.edu', 'idnumber' => 'S-2026-0042',
            'auth' => 'manual', 'firstname' => 'Sena', 'lastname' => 'Mênsah', 'institution' => 'Faculty of Science',
            'department' => 'Physics', 'suspended' => false, 'deleted' => false, 'confirmed' => true, 'mnethostid' => 1,
            'picture' => 0, 'timecreated' => 1795511702, 'timemodified' => 1795511702,
        ], $built['data']['snapshot']);

        $built = self::builder(['lastname', 'suspended', 'city'])->build(sample_events::user_event(), sample_events::user_row());
        $this->assertSame(
            ['id' => 42, 'lastname' => 'Mênsah', 'city' => 'Accra', 'suspended' => false],
            $built['data']['snapshot']
        );

        // Nullable DB columns that are NULL are left out rather than sent as null (the schema wants strings).
        $built = self::builder(['middlename', 'alternatename'])->build(sample_events::user_event(), sample_events::user_row());
        $this->assertSame(['id' => 42], $built['data']['snapshot']);
        $this->assertSame(['id' => 42], json_decode(json_encoder::encode($built), true)['data']['snapshot']);
    }

    /**
     * Snapshots of other entities keep only their schema's fields.
     *
     * @return void
     */
    public function test_other_snapshots_drop_unknown_columns(): void {
        $events = sample_events::one_per_type();
        [$eventdata, $row] = $events['moodle.completion.course_completed'];
        $built = self::builder()->build($eventdata, $row + ['password' => 'x']);
        $this->assertSame(
            ['id' => 5120, 'userid' => 42, 'courseid' => 7, 'timecompleted' => 1795515300],
            $built['data']['snapshot']
        );
    }

    /**
     * A class outside the table, or no class at all, is refused.
     *
     * @return void
     */
    public function test_unknown_event_class_refused(): void {
        foreach (['\\core\\event\\course_viewed', '\\core\\event\\user_password_updated', '', null] as $eventname) {
            $eventdata = ['eventname' => $eventname] + sample_events::user_event();
            try {
                self::builder()->build($eventdata, sample_events::user_row());
                $this->fail('Event class ' . var_export($eventname, true) . ' was accepted');
            } catch (\InvalidArgumentException $e) {
                $this->assertStringContainsString((string) ($eventname ?: 'eventname'), $e->getMessage());
            }
        }
    }

    /**
     * The class may come without its leading backslash; moodleevent always has one.
     *
     * @return void
     */
    public function test_class_without_leading_backslash(): void {
        $eventdata = ['eventname' => 'core\\event\\user_created'] + sample_events::user_event();
        $built = self::builder()->build($eventdata, sample_events::user_row());
        $this->assertSame('\\core\\event\\user_created', $built['moodleevent']);
        $this->assertSame('moodle.user.created', $built['type']);
        $this->assertStringContainsString(
            '"moodleevent":"\\\\core\\\\event\\\\user_created"',
            json_encoder::encode($built)
        );
    }

    /**
     * Data provider: site ids the contract refuses.
     *
     * @return array[] [site id]
     */
    public static function bad_site_id_provider(): array {
        return [
            'with a dot' => ['lms.prod'],
            'upper case' => ['LMS-prod'],
            'too long' => [str_repeat('a', 33)],
            'empty' => [''],
            'leading hyphen' => ['-lms'],
            'underscore' => ['lms_prod'],
            'trailing new line' => ["lms\n"],
            'space' => ['lms prod'],
            'non-ascii' => ['lmś'],
        ];
    }

    /**
     * A bad site id is refused with the value named.
     *
     * @dataProvider bad_site_id_provider
     * @param string $siteid The bad site id.
     * @return void
     */
    public function test_bad_site_id_refused(string $siteid): void {
        try {
            new envelope_builder($siteid, 'https://lms.example.edu');
            $this->fail("Site id '{$siteid}' was accepted");
        } catch (\InvalidArgumentException $e) {
            $this->assertStringContainsString('Invalid site id', $e->getMessage());
            $this->assertStringContainsString(json_encode($siteid, JSON_UNESCAPED_UNICODE), $e->getMessage());
        }
    }

    /**
     * Site ids at the edges of the pattern are accepted.
     *
     * @return void
     */
    public function test_good_site_ids_accepted(): void {
        foreach (['a', '0', str_repeat('a', 32), 'lms-prod', '9lms-', 'a-b-c'] as $siteid) {
            $this->assertSame($siteid, (new envelope_builder($siteid, 'https://lms.example.edu'))->get_site_id());
            $this->assertSame("{$siteid}.user.created", event_types::routing_key($siteid, 'moodle.user.created'));
        }
    }

    /**
     * Data provider: wwwroots the contract refuses.
     *
     * @return array[] [wwwroot]
     */
    public static function bad_wwwroot_provider(): array {
        return [
            'no scheme' => ['lms.example.edu'],
            'ftp' => ['ftp://lms.example.edu'],
            'no host' => ['https://'],
            'empty' => [''],
            'space' => ['https://lms.example .edu'],
            'javascript' => ['javascript:alert(1)'],
            'trailing new line' => ["https://lms.example.edu\n"],
            'upper-case scheme' => ['HTTPS://lms.example.edu'],
            'file' => ['file:///var/www'],
        ];
    }

    /**
     * A wwwroot that is not an http(s) URL is refused with the value named.
     *
     * @dataProvider bad_wwwroot_provider
     * @param string $wwwroot The bad wwwroot.
     * @return void
     */
    public function test_bad_wwwroot_refused(string $wwwroot): void {
        try {
            new envelope_builder('lms-prod', $wwwroot);
            $this->fail("wwwroot '{$wwwroot}' was accepted");
        } catch (\InvalidArgumentException $e) {
            $this->assertStringContainsString('Invalid wwwroot', $e->getMessage());
            $this->assertStringContainsString(json_encode($wwwroot, JSON_UNESCAPED_SLASHES), $e->getMessage());
        }
    }

    /**
     * Good wwwroots become the source as they are.
     *
     * @return void
     */
    public function test_wwwroot_is_the_source(): void {
        foreach (['http://localhost', 'http://localhost:8080/moodle', 'https://lms.example.edu/moodle'] as $wwwroot) {
            $built = (new envelope_builder('lms-prod', $wwwroot))->build(sample_events::user_event(), sample_events::user_row());
            $this->assertSame($wwwroot, $built['source']);
        }
    }

    /**
     * Sequences are 20-digit zero-padded decimal strings that sort as the numbers do.
     *
     * @return void
     */
    public function test_format_sequence(): void {
        $this->assertSame('00000000000000000000', sequence::format(0));
        $this->assertSame('00000000000000000042', sequence::format(42));
        $this->assertSame('09223372036854775807', sequence::format(PHP_INT_MAX));
        $this->assertLessThan(0, strcmp(sequence::format(9), sequence::format(10)));
        $this->assertLessThan(0, strcmp(
            sequence::format(999999),
            sequence::format(1000000)
        ));
        $this->expectException(\InvalidArgumentException::class);
        sequence::format(-1);
    }

    /**
     * The sequence can be set after the build (once the outbox row id is known); nothing else changes.
     *
     * @return void
     */
    public function test_with_sequence(): void {
        $built = self::builder()->build(sample_events::user_event(), sample_events::user_row());
        $this->assertSame('00000000000000000000', $built['sequence']);
        $resequenced = sequence::with_sequence($built, 1017);
        $this->assertSame('00000000000000001017', $resequenced['sequence']);
        $this->assertSame('00000000000000000000', $built['sequence'], 'the original is not changed');
        $this->assertSame(array_keys($built), array_keys($resequenced), 'the attribute order is kept');
        $expected = $built;
        $expected['sequence'] = '00000000000000001017';
        $this->assertSame($expected, $resequenced);
        $this->assertSame('00000000000000000007', sequence::with_sequence($resequenced, 7)['sequence']);

        $built = self::builder()->build(sample_events::user_event(), sample_events::user_row(), 99);
        $this->assertSame('00000000000000000099', $built['sequence']);

        try {
            sequence::with_sequence($built, -5);
            $this->fail('A negative sequence was accepted');
        } catch (\InvalidArgumentException $e) {
            $this->assertStringContainsString('-5', $e->getMessage());
        }
        $this->expectException(\InvalidArgumentException::class);
        sequence::with_sequence(['data' => []], 1);
    }

    /**
     * Each build makes a new lower-case UUID v4 unless an id is passed in; a bad id is refused.
     *
     * @return void
     */
    public function test_ids(): void {
        $builder = self::builder();
        $first = $builder->build(sample_events::user_event(), sample_events::user_row());
        $second = $builder->build(sample_events::user_event(), sample_events::user_row());
        $v4 = '/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/D';
        $this->assertMatchesRegularExpression($v4, $first['id']);
        $this->assertMatchesRegularExpression($v4, $second['id']);
        $this->assertNotSame($first['id'], $second['id']);
        unset($first['id'], $second['id']);
        $this->assertSame($first, $second, 'only the id differs between two builds of the same event');

        $given = '0f8e2f4c-7a6b-4d1e-9c3a-5b2d8e6f1a01';
        $this->assertSame($given, $builder->build(sample_events::user_event(), sample_events::user_row(), 0, $given)['id']);

        foreach (['0F8E2F4C-7A6B-4D1E-9C3A-5B2D8E6F1A01', 'not-a-uuid', ''] as $bad) {
            try {
                $builder->build(sample_events::user_event(), sample_events::user_row(), 0, $bad);
                $this->fail("Id '{$bad}' was accepted");
            } catch (\InvalidArgumentException $e) {
                $this->assertStringContainsString('Invalid event id', $e->getMessage());
            }
        }
    }

    /**
     * The JSON keeps slashes and Unicode as they are, and stays one line.
     *
     * @return void
     */
    public function test_json_unescaped(): void {
        $builder = new envelope_builder('lms-prod', 'https://lms.example.edu/moodle');
        $json = json_encoder::encode($builder->build(sample_events::user_event(), sample_events::user_row()));
        $this->assertStringContainsString('"source":"https://lms.example.edu/moodle"', $json);
        $this->assertStringContainsString('"lastname":"Mênsah"', $json);
        $this->assertStringNotContainsString('\\/', $json);
        $this->assertStringNotContainsString('\\u00ea', $json);
        $this->assertStringNotContainsString("\n", $json);
        $this->assertStringStartsWith('{"specversion":"1.0","id":"', $json);

        $row = ['lastname' => "M\xEAnsah"] + sample_events::user_row();
        $this->expectException(\JsonException::class);
        json_encoder::encode($builder->build(sample_events::user_event(), $row));
    }

    /**
     * An empty other is the JSON object {}, a null other stays null, a list becomes an object.
     *
     * @return void
     */
    public function test_other_encoding(): void {
        $builder = self::builder();
        $json = json_encoder::encode($builder->build(sample_events::user_event('updated', []), sample_events::user_row()));
        $this->assertStringContainsString('"other":{}', $json);
        $json = json_encoder::encode($builder->build(sample_events::user_event('updated', null), sample_events::user_row()));
        $this->assertStringContainsString('"other":null', $json);
        $json = json_encoder::encode($builder->build(sample_events::user_event('updated', ['a', 'b']), sample_events::user_row()));
        $this->assertStringContainsString('"other":{"0":"a","1":"b"}', $json);
        [$eventdata, $row] = sample_events::one_per_type()['moodle.enrolment.deleted'];
        $eventdata['other'] = ['enrol' => 'self', 'userenrolment' => []];
        $json = json_encoder::encode($builder->build($eventdata, $row));
        $this->assertStringContainsString('"other":{"enrol":"self","userenrolment":{}}', $json);
        $other = (object) ['note' => (object) ['x' => 1]];
        $built = $builder->build(['other' => $other] + sample_events::user_event('updated'), sample_events::user_row());
        $this->assertSame(['note' => ['x' => 1]], $built['data']['other']);
    }

    /**
     * The known keys of other are cast per type; unknown keys are passed on; nulls stay null.
     *
     * @return void
     */
    public function test_other_casts(): void {
        $builder = self::builder();
        $events = sample_events::one_per_type();

        [$eventdata, $row] = $events['moodle.role.assigned'];
        $eventdata['other'] = ['id' => '877', 'component' => '', 'itemid' => '0', 'extra' => '5'];
        $this->assertSame(
            ['id' => 877, 'component' => '', 'itemid' => 0, 'extra' => '5'],
            $builder->build($eventdata, $row)['data']['other']
        );

        [$eventdata, $row] = $events['moodle.completion.module_updated'];
        $eventdata['other'] = ['relateduserid' => '42', 'overrideby' => null, 'completionstate' => '0'];
        $this->assertSame(
            ['relateduserid' => 42, 'overrideby' => null, 'completionstate' => 0],
            $builder->build($eventdata, $row)['data']['other']
        );
        $eventdata['other']['overrideby'] = '2';
        $this->assertSame(2, $builder->build($eventdata, $row)['data']['other']['overrideby']);

        [$eventdata, $row] = $events['moodle.enrolment.deleted'];
        $eventdata['other'] = ['userenrolment' => ['id' => '311', 'enrolid' => '19', 'status' => '1', 'timeend' => '5',
            'modifierid' => '2', 'enrol' => 'self', 'lastenrol' => true, 'courseid' => '7', 'userid' => '42'], 'enrol' => 'self'];
        $this->assertSame(
            ['userenrolment' => ['id' => 311, 'enrolid' => 19, 'status' => 1, 'timeend' => 5, 'modifierid' => 2,
            'enrol' => 'self', 'lastenrol' => true, 'courseid' => 7, 'userid' => 42], 'enrol' => 'self'],
            $builder->build($eventdata, $row)['data']['other']
        );

        [$eventdata, $row] = $events['moodle.user.deleted'];
        $eventdata['other'] = ['username' => 's.mensah', 'email' => 'e', 'idnumber' => 1234, 'picture' => '7',
            'mnethostid' => '1'];
        $this->assertSame(['username' => 's.mensah', 'email' => 'e', 'idnumber' => '1234', 'picture' => 7,
            'mnethostid' => 1], $builder->build($eventdata, $row)['data']['other']);

        $eventdata['other']['picture'] = 'none';
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage('other.picture');
        $builder->build($eventdata, $row);
    }

    /**
     * Event fields are cast to the schema's types; null ids stay null; values that are not numbers are refused.
     *
     * @return void
     */
    public function test_event_field_casts(): void {
        $eventdata = array_map(function ($value) {
            return is_int($value) ? (string) $value : $value;
        }, sample_events::user_event());
        $eventdata['userid'] = null;
        $data = self::builder()->build($eventdata, sample_events::user_row())['data'];
        $this->assertSame(['objectid' => 42, 'userid' => null, 'relateduserid' => 42, 'courseid' => 0, 'contextid' => 137,
            'crud' => 'c', 'anonymous' => 0, 'timecreated' => 1795511702], array_slice($data, 0, 8, true));
        $this->assertSame(['contextlevel' => 30, 'contextinstanceid' => 42], array_slice($data, 10, null, true));
        $this->assertArrayNotHasKey('backfill', $data);

        $cases = ['courseid' => 'abc', 'contextid' => '1.5', 'timecreated' => '', 'objectid' => [], 'anonymous' => 'no',
            'timecreated ' => null, 'crud' => 'x', 'contextid ' => null];
        foreach ($cases as $field => $value) {
            $field = trim($field);
            $bad = sample_events::user_event();
            $bad[$field] = $value;
            try {
                self::builder()->build($bad, sample_events::user_row());
                $this->fail("{$field} = " . var_export($value, true) . ' was accepted');
            } catch (\InvalidArgumentException $e) {
                $this->assertStringContainsString($field, $e->getMessage());
            }
        }
    }

    /**
     * The time is timecreated in RFC 3339 UTC, whatever PHP's default time zone.
     *
     * @return void
     */
    public function test_time_is_utc(): void {
        $zone = date_default_timezone_get();
        try {
            date_default_timezone_set('Pacific/Auckland');
            $built = self::builder()->build(['timecreated' => '0'] + sample_events::user_event(), sample_events::user_row());
            $this->assertSame('1970-01-01T00:00:00Z', $built['time']);
            $built = self::builder()->build(sample_events::user_event(), sample_events::user_row());
            $this->assertSame('2026-11-24T09:15:02Z', $built['time']);
        } finally {
            date_default_timezone_set($zone);
        }
    }

    /**
     * Data provider: event data changes and the subject they give.
     *
     * @return array[] [type, changes to the event data, expected subject]
     */
    public static function subject_provider(): array {
        return [
            'user' => ['moodle.user.updated', ['relateduserid' => '43'], 'user/43'],
            'enrolment' => ['moodle.enrolment.created', ['courseid' => '8', 'relateduserid' => '43'], 'course/8/user/43'],
            'role in course' => ['moodle.role.assigned', ['courseid' => '8', 'contextid' => '300'], 'course/8/user/42'],
            'role in system' => ['moodle.role.assigned', ['courseid' => '0', 'contextid' => '1'], 'context/1/user/42'],
            'role in category' => ['moodle.role.unassigned', ['courseid' => 0, 'contextid' => 55], 'context/55/user/42'],
            'role without course' => ['moodle.role.unassigned', ['courseid' => null, 'contextid' => 55], 'context/55/user/42'],
            'cohort' => ['moodle.cohort.member_removed', ['objectid' => '9'], 'cohort/9/user/42'],
            'course completion' => ['moodle.completion.course_completed', ['courseid' => 12], 'course/12/user/42'],
            'module completion' => ['moodle.completion.module_updated', ['courseid' => 12], 'course/12/user/42'],
        ];
    }

    /**
     * The subject names the entity the way each type's schema requires.
     *
     * @dataProvider subject_provider
     * @param string $type CloudEvent type.
     * @param array $changes Changes to the event data.
     * @param string $subject Expected subject.
     * @return void
     */
    public function test_subject(string $type, array $changes, string $subject): void {
        [$eventdata, $row] = sample_events::one_per_type()[$type];
        $this->assertSame($subject, self::builder()->build($changes + $eventdata, $row)['subject']);
    }

    /**
     * An event without the ids its subject needs is refused rather than built with a broken subject.
     *
     * @return void
     */
    public function test_subject_needs_ids(): void {
        $events = sample_events::one_per_type();
        $cases = [
            ['moodle.user.created', ['relateduserid' => null], 'relateduserid'],
            ['moodle.enrolment.updated', ['courseid' => 0], 'courseid'],
            ['moodle.cohort.member_added', ['objectid' => null], 'objectid'],
            ['moodle.completion.course_completed', ['relateduserid' => '0'], 'relateduserid'],
        ];
        foreach ($cases as [$type, $changes, $field]) {
            [$eventdata, $row] = $events[$type];
            try {
                self::builder()->build($changes + $eventdata, $row);
                $this->fail("{$type} without {$field} was accepted");
            } catch (\InvalidArgumentException $e) {
                $this->assertStringContainsString($field, $e->getMessage());
            }
        }
    }

    /**
     * A snapshot without a field its schema requires is refused.
     *
     * @return void
     */
    public function test_snapshot_required_fields(): void {
        [$eventdata, $row] = sample_events::one_per_type()['moodle.role.assigned'];
        unset($row['roleid']);
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage("'roleid'");
        self::builder()->build($eventdata, $row);
    }

    /**
     * The backfill flag adds data.backfill = true, last in data, and nothing else.
     *
     * @return void
     */
    public function test_backfill(): void {
        [$eventdata, $row] = sample_events::one_per_type()['moodle.enrolment.created'];
        $id = '6f7a8b9c-0d1e-4f2a-9b4c-5d6e7f8a9b16';
        $normal = self::builder()->build($eventdata, $row, 5, $id);
        $backfill = self::builder()->build($eventdata, $row, 5, $id, true);
        $this->assertArrayNotHasKey('backfill', $normal['data']);
        $this->assertTrue($backfill['data']['backfill']);
        $this->assertSame('backfill', array_key_last($backfill['data']));
        unset($backfill['data']['backfill']);
        $this->assertSame($normal, $backfill);
    }

    /**
     * The envelope has the contract's attributes in the contract's order and the site's configuration.
     *
     * @return void
     */
    public function test_envelope_attributes(): void {
        [$eventdata, $row] = sample_events::one_per_type()['moodle.cohort.member_added'];
        $built = (new envelope_builder('site-7', 'http://moodle.test'))->build($eventdata, $row, 12);
        $this->assertSame(['specversion', 'id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'dataschema',
            'moodlesite', 'moodleevent', 'sequence', 'data'], array_keys($built));
        $this->assertSame('1.0', $built['specversion']);
        $this->assertSame('http://moodle.test', $built['source']);
        $this->assertSame('application/json', $built['datacontenttype']);
        $this->assertSame('urn:moodle-event-relay:schema:moodle.cohort.member_added:1', $built['dataschema']);
        $this->assertSame('site-7', $built['moodlesite']);
        $this->assertSame('\\core\\event\\cohort_member_added', $built['moodleevent']);
        $this->assertSame(['objectid', 'userid', 'relateduserid', 'courseid', 'contextid', 'crud', 'anonymous',
            'timecreated', 'other', 'snapshot', 'contextlevel', 'contextinstanceid'], array_keys($built['data']));
        $this->assertNull($built['data']['other']);
    }

    /**
     * A user field list that is not made of strings is a programming error.
     *
     * @return void
     */
    public function test_user_fields_must_be_strings(): void {
        $this->expectException(\InvalidArgumentException::class);
        new envelope_builder('lms-prod', 'https://lms.example.edu', ['email', 5]);
    }
}
