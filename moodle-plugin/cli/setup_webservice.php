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

/**
 * Provisions the relay worker's web-service access: service user, role, external service and token.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

define('CLI_SCRIPT', true);

require(__DIR__ . '/../../../config.php');
require_once($CFG->libdir . '/clilib.php');

use local_eventrelay\local\webservice_setup;

[$options, $unrecognised] = cli_get_params([
    'help' => false,
    'username' => 'eventrelay',
    'role' => 'eventrelay',
    'service' => 'local_eventrelay',
    'valid-days' => 90,
    'iprestriction' => '',
    'rotate' => false,
    'revoke-old' => false,
    'token-file' => '',
], ['h' => 'help']);
if ($unrecognised) {
    cli_error(get_string('cliunknowoption', 'admin', implode(PHP_EOL . '  ', $unrecognised)));
}
if ($options['help']) {
    echo "Sets up (idempotently) what the relay worker needs to call Moodle's web services:
  - a service user with auth 'webservice' (it cannot log in interactively);
  - a role with exactly the capabilities of the enrichment functions, assigned at system level;
  - an external service with exactly core_user_get_users_by_field, core_course_get_courses_by_field,
    core_completion_get_course_completion_status and core_webservice_get_site_info, authorised users only;
  - a token that expires. The token is printed once, on standard output (or written to --token-file), and
    never again.

Options:
  --username=NAME       Service user (default eventrelay).
  --role=SHORTNAME      Role (default eventrelay).
  --service=SHORTNAME   External service (default local_eventrelay).
  --valid-days=N        Days a new token is valid (default 90).
  --iprestriction=LIST  Addresses allowed to use a new token, e.g. 10.0.0.0/8 (default: any).
  --rotate              Make a new token even if one exists; the old one keeps working until --revoke-old.
  --revoke-old          Delete every token of the service user for the service except the newest.
  --token-file=PATH     Write a new token to PATH (mode 0600) instead of standard output, with a second line
                        expires_at=<time> that the worker reads for its token-expiry metric and alert.
  -h, --help            Print this help.

Zero-downtime rotation: run with --rotate, give the new token to the worker (token_file), then --revoke-old.
";
    exit(0);
}

\core\session\manager::set_user(get_admin());
$setup = new webservice_setup($options['username'], $options['role'], $options['service']);
[$user, $service] = $setup->ensure_all();
$tokens = $setup->tokens($user, $service);
$valid = array_filter($tokens, function (\stdClass $token): bool {
    return empty($token->validuntil) || $token->validuntil > time();
});

$newtoken = null;
if ($options['rotate'] || !$valid) {
    $newtoken = $setup->create_token($user, $service, (int) $options['valid-days'], trim($options['iprestriction']));
} else if (!$options['revoke-old']) {
    $setup->log[] = 'A valid token exists (created ' . userdate(reset($valid)->timecreated) . '); it is not shown again. '
        . 'Use --rotate for a new one.';
}
if ($options['revoke-old']) {
    $setup->revoke_old($user, $service);
}
foreach ($setup->log as $line) {
    cli_problem($line);
}
if ($newtoken !== null && $options['token-file'] !== '') {
    // Written whole or not at all: a worker re-reading the file never sees half a token.
    $path = $options['token-file'];
    $temp = $path . '.' . getmypid() . '.tmp';
    $old = umask(0077);
    $written = file_put_contents($temp, webservice_setup::token_file_text($newtoken, $setup->lastvaliduntil));
    umask($old);
    if ($written === false || !rename($temp, $path)) {
        @unlink($temp);
        cli_error("Could not write the token file {$path}; the new token is not shown. Run again with --rotate.");
    }
    cli_problem("Wrote the new token to {$path}.");
} else if ($newtoken !== null) {
    // The only place the token is ever printed: standard output, alone on its line, for "> token_file".
    echo $newtoken . PHP_EOL;
}
exit(0);
