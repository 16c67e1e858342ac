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

use local_eventrelay\local\webservice_setup;

/**
 * The web-service provisioning: exact capabilities and functions, idempotent, tokens that expire, rotation.
 *
 * (The HTTP behaviour of the token, accepted for the four functions and refused for others, is checked
 * against a served Moodle; see the plugin's README.)
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_eventrelay\local\webservice_setup
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_eventrelay\local\webservice_setup::class)]
final class webservice_setup_test extends \advanced_testcase {
    /**
     * Running twice gives the same user, role, service and exactly the listed capabilities and functions.
     *
     * @return void
     */
    public function test_setup_is_exact_and_idempotent(): void {
        global $CFG, $DB;
        $this->resetAfterTest();
        $this->setAdminUser();
        [$user, $service] = (new webservice_setup())->ensure_all();
        $roleid = $DB->get_field('role', 'id', ['shortname' => 'eventrelay'], MUST_EXIST);
        assign_capability('moodle/user:delete', CAP_ALLOW, $roleid, \context_system::instance()->id);
        $DB->insert_record(
            'external_services_functions',
            ['externalserviceid' => $service->id, 'functionname' => 'core_user_create_users']
        );

        $again = new webservice_setup();
        [$user2, $service2] = $again->ensure_all();

        $this->assertSame($user->id, $user2->id);
        $this->assertEquals($service->id, $service2->id);
        $this->assertSame('webservice', $user2->auth);
        $this->assertEqualsCanonicalizing(
            webservice_setup::CAPABILITIES,
            $DB->get_fieldset_select('role_capabilities', 'capability', 'roleid = ?', [$roleid])
        );
        $this->assertEqualsCanonicalizing(
            webservice_setup::FUNCTIONS,
            $DB->get_fieldset_select(
                'external_services_functions',
                'functionname',
                'externalserviceid = ?',
                [$service->id]
            )
        );
        $this->assertSame([(string) CONTEXT_SYSTEM], array_values(array_map('strval', get_role_contextlevels($roleid))));
        $this->assertTrue(user_has_role_assignment($user->id, $roleid, \context_system::instance()->id));
        $this->assertSame('1', (string) $service2->restrictedusers);
        $this->assertEquals([$user->id], $DB->get_fieldset_select(
            'external_services_users',
            'userid',
            'externalserviceid = ?',
            [$service->id]
        ));
        $this->assertContains('rest', explode(',', $CFG->webserviceprotocols));
        $this->assertContains('Removed moodle/user:delete from the role.', $again->log);
        $this->assertContains('Removed core_user_create_users from the service.', $again->log);
        foreach (webservice_setup::CAPABILITIES as $capability) {
            $this->assertNotNull(get_capability_info($capability), "{$capability} exists");
        }
        foreach (webservice_setup::FUNCTIONS as $function) {
            $this->assertTrue($DB->record_exists('external_functions', ['name' => $function]), "{$function} exists");
        }
    }

    /**
     * Tokens expire as asked, rotation keeps the old one, revocation keeps only the newest.
     *
     * @return void
     */
    public function test_tokens_rotate_and_revoke(): void {
        $this->resetAfterTest();
        $this->setAdminUser();
        $setup = new webservice_setup();
        [$user, $service] = $setup->ensure_all();
        $first = $setup->create_token($user, $service, 90, '10.0.0.0/8');
        $second = $setup->create_token($user, $service, 30, '');
        $tokens = $setup->tokens($user, $service);
        $this->assertSame([$second, $first], array_column($tokens, 'token'));
        $this->assertEqualsWithDelta(time() + 30 * DAYSECS, $tokens[0]->validuntil, 5);
        $this->assertSame('10.0.0.0/8', $tokens[1]->iprestriction);
        $this->assertSame(1, $setup->revoke_old($user, $service));
        $this->assertSame([$second], array_column($setup->tokens($user, $service), 'token'));
    }

    /**
     * A token file names the token's expiry in the form the worker reads (expires_at=, RFC 3339 UTC).
     *
     * @return void
     */
    public function test_token_file_says_when_the_token_expires(): void {
        $this->resetAfterTest();
        $this->setAdminUser();
        $setup = new webservice_setup();
        [$user, $service] = $setup->ensure_all();
        $token = $setup->create_token($user, $service, 30, '');
        $this->assertSame((int) $setup->tokens($user, $service)[0]->validuntil, $setup->lastvaliduntil);
        $this->assertSame("abc\nexpires_at=2027-06-30T00:00:00Z\n", webservice_setup::token_file_text('abc', 1814313600));
        $this->assertSame("abc\n", webservice_setup::token_file_text('abc', 0));
        $this->assertStringStartsWith($token . "\nexpires_at=", webservice_setup::token_file_text($token, $setup->lastvaliduntil));
    }
}
