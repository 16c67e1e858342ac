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
 * Tests of the snapshot definitions.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\snapshot
 */
class snapshot_test extends \PHPUnit\Framework\TestCase {
    /**
     * @var string[] Snapshot kind => name of its definition in cloudevent.schema.json.
     */
    public const SCHEMA_DEFS = [
        snapshot::KIND_USER => 'userSnapshot',
        snapshot::KIND_ENROLMENT => 'enrolmentSnapshot',
        snapshot::KIND_ROLE_ASSIGNMENT => 'roleAssignmentSnapshot',
        snapshot::KIND_COHORT_MEMBER => 'cohortMemberSnapshot',
        snapshot::KIND_COURSE_COMPLETION => 'courseCompletionSnapshot',
        snapshot::KIND_MODULE_COMPLETION => 'moduleCompletionSnapshot',
    ];

    /**
     * The field tables are exactly the schema's: same fields, same order, same types, same required ones.
     *
     * @return void
     */
    public function test_fields_match_the_schema(): void {
        $path = relay_validator::repository_root() . '/schemas/cloudevent.schema.json';
        $schema = json_decode(file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
        $this->assertSame(array_keys(self::SCHEMA_DEFS), array_keys(snapshot::FIELDS));
        foreach (self::SCHEMA_DEFS as $kind => $defname) {
            $def = $schema['$defs'][$defname];
            $this->assertFalse($def['additionalProperties'], $defname);
            $this->assertSame(array_keys($def['properties']), array_keys(snapshot::FIELDS[$kind]), $defname);
            $this->assertSame($def['required'], snapshot::REQUIRED[$kind], $defname);
            foreach ($def['properties'] as $field => $property) {
                $expected = [
                    'integer' => cast::INT,
                    'string' => cast::STRING,
                    'boolean' => cast::BOOL,
                ][is_array($property['type']) ? 'nullable' : $property['type']] ?? null;
                if (is_array($property['type'])) {
                    $this->assertSame(['integer', 'null'], $property['type'], "{$defname}.{$field}");
                    $expected = cast::NULLABLE_INT;
                }
                $this->assertSame($expected, snapshot::FIELDS[$kind][$field], "{$defname}.{$field}");
            }
        }
    }

    /**
     * Each type's schema points its snapshot at the definition of the kind the class gives it.
     *
     * @return void
     */
    public function test_kinds_match_the_type_schemas(): void {
        foreach (event_types::all_types() as $type) {
            $path = relay_validator::repository_root() . "/schemas/events/{$type}.schema.json";
            $schema = json_decode(file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
            $ref = $schema['properties']['data']['properties']['snapshot']['$ref'];
            $this->assertSame('urn:moodle-event-relay:schema:cloudevent:1#/$defs/'
                . self::SCHEMA_DEFS[snapshot::kind_for_type($type)], $ref, $type);
        }
    }

    /**
     * A DB row becomes a snapshot in the schema's order with the schema's types, other columns dropped.
     *
     * @return void
     */
    public function test_make_from_db_row(): void {
        $row = (object) [
            'timemodified' => '1795515000', 'overrideby' => null, 'completionstate' => '2', 'userid' => '42',
            'coursemoduleid' => '61', 'id' => '90210', 'viewed' => '1', 'password' => 'x',
        ];
        $this->assertSame(
            ['id' => 90210, 'coursemoduleid' => 61, 'userid' => 42, 'completionstate' => 2, 'overrideby' => null,
                'timemodified' => 1795515000],
            snapshot::make(snapshot::KIND_MODULE_COMPLETION, $row)
        );
    }

    /**
     * A null in a field whose type does not allow null is left out; a required field must be there.
     *
     * @return void
     */
    public function test_nulls_and_required_fields(): void {
        $this->assertSame(['id' => 42, 'lastname' => 'Mensah'], snapshot::make(
            snapshot::KIND_USER,
            ['id' => '42', 'middlename' => null, 'lastname' => 'Mensah']
        ));
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage("'enrol'");
        snapshot::make(snapshot::KIND_ENROLMENT, ['id' => '1', 'userid' => '2', 'courseid' => '3', 'enrol' => null]);
    }
}
