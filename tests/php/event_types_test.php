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
 * Tests of the event type table (DESIGN.md section 2).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\core\event_types
 */
class event_types_test extends \PHPUnit\Framework\TestCase {
    /**
     * The table of DESIGN.md section 2, written out independently of the class under test.
     *
     * @return array[] [Moodle class, type, routing key for site "lms-prod"]
     */
    public static function design_table_provider(): array {
        return [
            ['\\core\\event\\user_created', 'moodle.user.created', 'lms-prod.user.created'],
            ['\\core\\event\\user_updated', 'moodle.user.updated', 'lms-prod.user.updated'],
            ['\\core\\event\\user_deleted', 'moodle.user.deleted', 'lms-prod.user.deleted'],
            ['\\core\\event\\user_enrolment_created', 'moodle.enrolment.created', 'lms-prod.enrolment.created'],
            ['\\core\\event\\user_enrolment_updated', 'moodle.enrolment.updated', 'lms-prod.enrolment.updated'],
            ['\\core\\event\\user_enrolment_deleted', 'moodle.enrolment.deleted', 'lms-prod.enrolment.deleted'],
            ['\\core\\event\\role_assigned', 'moodle.role.assigned', 'lms-prod.role.assigned'],
            ['\\core\\event\\role_unassigned', 'moodle.role.unassigned', 'lms-prod.role.unassigned'],
            ['\\core\\event\\cohort_member_added', 'moodle.cohort.member_added', 'lms-prod.cohort.member_added'],
            ['\\core\\event\\cohort_member_removed', 'moodle.cohort.member_removed', 'lms-prod.cohort.member_removed'],
            ['\\core\\event\\course_completed', 'moodle.completion.course_completed',
                'lms-prod.completion.course_completed'],
            ['\\core\\event\\course_module_completion_updated', 'moodle.completion.module_updated',
                'lms-prod.completion.module_updated'],
        ];
    }

    /**
     * Each row of the table maps both ways, with or without the leading backslash.
     *
     * @dataProvider design_table_provider
     * @param string $classname Moodle event class.
     * @param string $type CloudEvent type.
     * @param string $routingkey Routing key for site "lms-prod".
     * @return void
     */
    public function test_table_row(string $classname, string $type, string $routingkey): void {
        $this->assertSame($type, event_types::type_for_class($classname));
        $this->assertSame($type, event_types::type_for_class(ltrim($classname, '\\')));
        $this->assertSame($classname, event_types::class_for_type($type));
        $this->assertSame($routingkey, event_types::routing_key('lms-prod', $type));
        $this->assertSame(substr($routingkey, strlen('lms-prod.')), event_types::routing_suffix($type));
        $this->assertSame("urn:moodle-event-relay:schema:{$type}:1", event_types::schema_id($type));
        $this->assertTrue(event_types::is_known_class($classname));
        $this->assertTrue(event_types::is_known_type($type));
    }

    /**
     * The table has exactly the 12 rows of the design, in its order.
     *
     * @return void
     */
    public function test_all_types_and_classes(): void {
        $rows = self::design_table_provider();
        $this->assertSame(array_column($rows, 1), event_types::all_types());
        $this->assertSame(array_column($rows, 0), event_types::all_classes());
    }

    /**
     * schema_id() is the `$id` of the type's schema file, and the file's type and moodleevent constants agree.
     *
     * @return void
     */
    public function test_schema_ids_match_the_schema_files(): void {
        $files = glob(relay_validator::repository_root() . '/schemas/events/*.schema.json');
        $this->assertCount(12, $files);
        foreach ($files as $file) {
            $schema = json_decode(file_get_contents($file), true, 512, JSON_THROW_ON_ERROR);
            $type = $schema['properties']['type']['const'];
            $this->assertSame(basename($file), "{$type}.schema.json");
            $this->assertSame($schema['$id'], event_types::schema_id($type));
            $this->assertSame($schema['$id'], $schema['properties']['dataschema']['const']);
            $this->assertSame($schema['properties']['moodleevent']['const'], event_types::class_for_type($type));
        }
    }

    /**
     * Classes and types outside the table are not known.
     *
     * @return void
     */
    public function test_unknown_class_and_type(): void {
        $this->assertNull(event_types::type_for_class('\\core\\event\\course_viewed'));
        $this->assertNull(event_types::type_for_class('\\core\\event\\user_password_updated'));
        $this->assertNull(event_types::type_for_class('user_created'));
        $this->assertNull(event_types::type_for_class(''));
        $this->assertNull(event_types::class_for_type('moodle.course.viewed'));
        $this->assertNull(event_types::class_for_type('user.created'));
        $this->assertFalse(event_types::is_known_class('\\mod_forum\\event\\user_created'));
        $this->assertFalse(event_types::is_known_type('moodle.user'));
    }

    /**
     * Leading backslashes and surrounding spaces do not matter; the canonical form has one backslash.
     *
     * @return void
     */
    public function test_normalise_class(): void {
        $this->assertSame('\\core\\event\\role_assigned', event_types::normalise_class('core\\event\\role_assigned'));
        $this->assertSame('\\core\\event\\role_assigned', event_types::normalise_class('\\core\\event\\role_assigned'));
        $this->assertSame('\\core\\event\\role_assigned', event_types::normalise_class(' \\core\\event\\role_assigned '));
        $this->assertSame('moodle.role.assigned', event_types::type_for_class(' \\core\\event\\role_assigned'));
    }

    /**
     * The entity of a type is the first word of its routing suffix.
     *
     * @return void
     */
    public function test_entity(): void {
        $this->assertSame('user', event_types::entity('moodle.user.deleted'));
        $this->assertSame('enrolment', event_types::entity('moodle.enrolment.created'));
        $this->assertSame('role', event_types::entity('moodle.role.unassigned'));
        $this->assertSame('cohort', event_types::entity('moodle.cohort.member_added'));
        $this->assertSame('completion', event_types::entity('moodle.completion.module_updated'));
    }

    /**
     * A routing key needs a valid site id and a known type.
     *
     * @return void
     */
    public function test_routing_key_refuses_bad_input(): void {
        foreach (['lms.prod', 'LMS', '', str_repeat('a', 33)] as $siteid) {
            try {
                event_types::routing_key($siteid, 'moodle.user.created');
                $this->fail("Site id '{$siteid}' was accepted");
            } catch (\InvalidArgumentException $e) {
                $this->assertStringContainsString('Invalid site id', $e->getMessage());
            }
        }
        $this->expectException(\InvalidArgumentException::class);
        $this->expectExceptionMessage('moodle.course.viewed');
        event_types::routing_key('lms-prod', 'moodle.course.viewed');
    }

    /**
     * Schema ids and routing suffixes exist only for known types.
     *
     * @return void
     */
    public function test_schema_id_refuses_unknown_type(): void {
        $this->expectException(\InvalidArgumentException::class);
        event_types::schema_id('moodle.course.viewed');
    }
}
