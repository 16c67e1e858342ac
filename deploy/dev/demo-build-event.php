<?php
// Demo helper for `make demo`: builds one event with the Moodle plugin's
// plain-PHP envelope builder, as the plugin's observer will, and prints it as
// one JSON line. Not part of the plugin.

spl_autoload_register(function (string $class): void {
    $prefix = 'local_eventrelay\\';
    if (strpos($class, $prefix) === 0) {
        $path = __DIR__ . '/../../moodle-plugin/classes/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($path)) {
            require $path;
        }
    }
});

use local_eventrelay\local\envelope_builder;

$builder = new envelope_builder('lms-demo', 'https://lms.example.edu');
// What \core\event\user_enrolment_created::get_data() gives, with DB strings.
$eventdata = [
    'eventname' => '\\core\\event\\user_enrolment_created',
    'objectid' => '311', 'crud' => 'c', 'contextid' => '201', 'contextlevel' => '50',
    'contextinstanceid' => '7', 'userid' => '2', 'courseid' => '7', 'relateduserid' => '42',
    'anonymous' => '0', 'other' => ['enrol' => 'manual'], 'timecreated' => time(),
];
$snapshot = [
    'id' => '311', 'enrolid' => '19', 'userid' => '42', 'courseid' => '7', 'enrol' => 'manual',
    'status' => '0', 'timestart' => (string) time(), 'timeend' => '0',
];
echo envelope_builder::to_json($builder->build($eventdata, $snapshot, 1)), "\n";
