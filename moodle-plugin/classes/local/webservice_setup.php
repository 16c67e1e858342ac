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

namespace local_eventrelay\local;

/**
 * Provisions what the relay worker needs to call Moodle's web services (Moodle glue, used by
 * cli/setup_webservice.php): a service user that cannot log in interactively, a role with exactly the
 * capabilities of the enrichment functions assigned at system level, an external service with exactly
 * those functions for authorised users only, and expiring tokens. Every step is idempotent.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class webservice_setup {
    /** @var string[] The web-service functions the relay worker calls (DESIGN.md §4 enrichment and probe). */
    public const FUNCTIONS = [
        'core_user_get_users_by_field',
        'core_course_get_courses_by_field',
        'core_completion_get_course_completion_status',
        'core_webservice_get_site_info',
    ];

    /**
     * @var string[] Exactly the capabilities those functions need to return full, read-only answers:
     * REST access; user details, hidden details, e-mail and identity fields (core_user_get_users_by_field,
     * without its optional write capability moodle/user:update); seeing any course, hidden ones too
     * (core_course_get_courses_by_field); completion reports (core_completion_get_course_completion_status).
     */
    public const CAPABILITIES = [
        'webservice/rest:use',
        'moodle/user:viewdetails',
        'moodle/user:viewhiddendetails',
        'moodle/user:viewalldetails',
        'moodle/course:useremail',
        'moodle/site:viewuseridentity',
        'moodle/course:view',
        'moodle/course:viewhiddencourses',
        'report/completion:view',
    ];

    /** @var string Service user name. */
    public $username;

    /** @var string Role short name. */
    public $roleshortname;

    /** @var string External service short name. */
    public $serviceshortname;

    /** @var string[] What was done, for the CLI to print. */
    public $log = [];

    /** @var int When the token {@see webservice_setup::create_token()} made last expires (Unix time). */
    public $lastvaliduntil = 0;

    /**
     * Makes a setup.
     *
     * @param string $username Service user name.
     * @param string $roleshortname Role short name.
     * @param string $serviceshortname External service short name.
     */
    public function __construct(
        string $username = 'eventrelay',
        string $roleshortname = 'eventrelay',
        string $serviceshortname = 'local_eventrelay'
    ) {
        $this->username = $username;
        $this->roleshortname = $roleshortname;
        $this->serviceshortname = $serviceshortname;
    }

    /**
     * Creates or corrects everything but the token.
     *
     * @return array [user record, service record]
     */
    public function ensure_all(): array {
        $this->enable_rest();
        $user = $this->ensure_user();
        $roleid = $this->ensure_role();
        $context = \context_system::instance();
        if (!user_has_role_assignment($user->id, $roleid, $context->id)) {
            role_assign($roleid, $user->id, $context->id);
            $this->log[] = "Assigned role {$this->roleshortname} to {$this->username} at system level.";
        }
        $service = $this->ensure_service($user);
        return [$user, $service];
    }

    /**
     * Enables web services and the REST protocol.
     *
     * @return void
     */
    private function enable_rest(): void {
        global $CFG;
        if (empty($CFG->enablewebservices)) {
            set_config('enablewebservices', 1);
            $this->log[] = 'Enabled web services.';
        }
        $protocols = config::parse_list((string) ($CFG->webserviceprotocols ?? ''));
        if (!in_array('rest', $protocols, true)) {
            $protocols[] = 'rest';
            set_config('webserviceprotocols', implode(',', $protocols));
            $this->log[] = 'Enabled the REST protocol.';
        }
    }

    /**
     * Creates the service user (auth "webservice": no interactive login) or corrects it.
     *
     * @return \stdClass The user record.
     */
    private function ensure_user(): \stdClass {
        global $CFG, $DB;
        require_once($CFG->dirroot . '/user/lib.php');
        $user = $DB->get_record('user', ['username' => $this->username, 'mnethostid' => $CFG->mnet_localhost_id,
            'deleted' => 0]);
        if (!$user) {
            $id = user_create_user((object) [
                'username' => $this->username,
                'auth' => 'webservice',
                'password' => random_string(40) . '#1aA',
                'firstname' => 'Event relay',
                'lastname' => 'Web service',
                'email' => $this->username . '@localhost.invalid',
                'confirmed' => 1,
                'mnethostid' => $CFG->mnet_localhost_id,
            ], true, false);
            $this->log[] = "Created the service user {$this->username} (auth webservice: no interactive login).";
            return $DB->get_record('user', ['id' => $id], '*', MUST_EXIST);
        }
        if ($user->auth !== 'webservice' || $user->suspended) {
            user_update_user((object) ['id' => $user->id, 'auth' => 'webservice', 'suspended' => 0], false, false);
            $this->log[] = "Set {$this->username} to auth webservice, not suspended.";
            $user = $DB->get_record('user', ['id' => $user->id], '*', MUST_EXIST);
        }
        return $user;
    }

    /**
     * Creates the role or makes its capabilities exactly CAPABILITIES, system level only.
     *
     * @return int The role id.
     */
    private function ensure_role(): int {
        global $DB;
        $context = \context_system::instance();
        $roleid = $DB->get_field('role', 'id', ['shortname' => $this->roleshortname]);
        if (!$roleid) {
            $roleid = create_role(
                'Event relay web service',
                $this->roleshortname,
                'Exactly the capabilities the relay worker needs for its Moodle web-service calls (local_eventrelay).'
            );
            $this->log[] = "Created the role {$this->roleshortname}.";
        }
        set_role_contextlevels($roleid, [CONTEXT_SYSTEM]);
        $current = $DB->get_records_menu(
            'role_capabilities',
            ['roleid' => $roleid, 'contextid' => $context->id],
            '',
            'capability, permission'
        );
        foreach ($current as $capability => $permission) {
            if (!in_array($capability, self::CAPABILITIES, true)) {
                unassign_capability($capability, $roleid, $context->id);
                $this->log[] = "Removed {$capability} from the role.";
            }
        }
        foreach (self::CAPABILITIES as $capability) {
            if (($current[$capability] ?? null) != CAP_ALLOW) {
                assign_capability($capability, CAP_ALLOW, $roleid, $context->id, true);
                $this->log[] = "Allowed {$capability}.";
            }
        }
        $context->mark_dirty();
        return (int) $roleid;
    }

    /**
     * Creates the external service or makes its functions exactly FUNCTIONS, authorised users only.
     *
     * @param \stdClass $user The service user, the one authorised user.
     * @return \stdClass The service record.
     */
    private function ensure_service(\stdClass $user): \stdClass {
        global $DB;
        $service = $DB->get_record('external_services', ['shortname' => $this->serviceshortname]);
        if (!$service) {
            $service = (object) [
                'name' => 'Event relay enrichment',
                'shortname' => $this->serviceshortname,
                'enabled' => 1,
                'restrictedusers' => 1,
                'requiredcapability' => null,
                'component' => null,
                'timecreated' => time(),
                'timemodified' => time(),
                'downloadfiles' => 0,
                'uploadfiles' => 0,
            ];
            $service->id = $DB->insert_record('external_services', $service);
            $this->log[] = "Created the external service {$this->serviceshortname}.";
        } else if (!$service->enabled || !$service->restrictedusers) {
            $service->enabled = 1;
            $service->restrictedusers = 1;
            $service->timemodified = time();
            $DB->update_record('external_services', $service);
            $this->log[] = 'Enabled the service for authorised users only.';
        }
        $functions = $DB->get_records_menu(
            'external_services_functions',
            ['externalserviceid' => $service->id],
            '',
            'id, functionname'
        );
        foreach ($functions as $id => $functionname) {
            if (!in_array($functionname, self::FUNCTIONS, true)) {
                $DB->delete_records('external_services_functions', ['id' => $id]);
                $this->log[] = "Removed {$functionname} from the service.";
            }
        }
        foreach (array_diff(self::FUNCTIONS, $functions) as $functionname) {
            $DB->insert_record(
                'external_services_functions',
                ['externalserviceid' => $service->id, 'functionname' => $functionname]
            );
            $this->log[] = "Added {$functionname} to the service.";
        }
        $authorised = $DB->get_records('external_services_users', ['externalserviceid' => $service->id]);
        $found = false;
        foreach ($authorised as $row) {
            if ($row->userid == $user->id) {
                $found = true;
            } else {
                $DB->delete_records('external_services_users', ['id' => $row->id]);
                $this->log[] = "Removed user {$row->userid} from the authorised users.";
            }
        }
        if (!$found) {
            $DB->insert_record('external_services_users', ['externalserviceid' => $service->id, 'userid' => $user->id,
                'iprestriction' => null, 'validuntil' => null, 'timecreated' => time()]);
            $this->log[] = "Authorised {$this->username} for the service.";
        }
        return $service;
    }

    /**
     * Returns the service user's tokens for the service, newest first.
     *
     * @param \stdClass $user The service user.
     * @param \stdClass $service The service.
     * @return \stdClass[] Token records (the token text is not used by callers that print).
     */
    public function tokens(\stdClass $user, \stdClass $service): array {
        global $DB;
        return array_values($DB->get_records('external_tokens', ['userid' => $user->id,
            'externalserviceid' => $service->id, 'tokentype' => EXTERNAL_TOKEN_PERMANENT], 'id DESC'));
    }

    /**
     * Returns what a token file for the relay worker holds: the token on the first line, then when it expires
     * (`expires_at=`, RFC 3339 UTC), which the worker exports for the token-expiry alert.
     *
     * @param string $token The token.
     * @param int $validuntil When it expires (Unix time); 0 for never (no expires_at line then).
     * @return string The file's text.
     */
    public static function token_file_text(string $token, int $validuntil): string {
        return $token . "\n" . ($validuntil > 0 ? 'expires_at=' . gmdate('Y-m-d\TH:i:s\Z', $validuntil) . "\n" : '');
    }

    /**
     * Creates a token.
     *
     * @param \stdClass $user The service user.
     * @param \stdClass $service The service.
     * @param int $validdays Days until it expires.
     * @param string $iprestriction Allowed addresses (Moodle's syntax), '' for any.
     * @return string The token, to be shown once; {@see webservice_setup::$lastvaliduntil} says until when.
     */
    public function create_token(\stdClass $user, \stdClass $service, int $validdays, string $iprestriction): string {
        $validuntil = time() + max(1, $validdays) * DAYSECS;
        $this->lastvaliduntil = $validuntil;
        $token = \core_external\util::generate_token(
            EXTERNAL_TOKEN_PERMANENT,
            $service,
            $user->id,
            \context_system::instance(),
            $validuntil,
            $iprestriction,
            'local_eventrelay ' . userdate(time(), '%Y-%m-%d')
        );
        $this->log[] = 'Created a token valid until ' . userdate($validuntil) . ($iprestriction !== ''
            ? " for {$iprestriction}" : '') . '.';
        return $token;
    }

    /**
     * Deletes every token of the service user for the service but the newest.
     *
     * @param \stdClass $user The service user.
     * @param \stdClass $service The service.
     * @return int How many tokens were deleted.
     */
    public function revoke_old(\stdClass $user, \stdClass $service): int {
        global $DB;
        $tokens = $this->tokens($user, $service);
        array_shift($tokens);
        foreach ($tokens as $token) {
            $DB->delete_records('external_tokens', ['id' => $token->id]);
        }
        $this->log[] = 'Revoked ' . count($tokens) . ' older token(s).';
        return count($tokens);
    }
}
