<?php
// Demo client for `make demo` (not part of the plugin): plays Moodle and a
// downstream system around a running relay-worker.
//
//   php demo-client.php setup     declare the demo's downstream queue
//   php demo-client.php publish   publish sample events as the plugin does, plus one bad event
//   php demo-client.php show N    show N relayed events and the demo site's DLQ entries

spl_autoload_register(function (string $class): void {
    $prefix = 'local_eventrelay\\';
    if (strpos($class, $prefix) === 0) {
        $path = __DIR__ . '/../../moodle-plugin/classes/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($path)) {
            require $path;
        }
    }
});
require_once('/usr/share/php/PhpAmqpLib/autoload.php');

use local_eventrelay\core\envelope_builder;
use local_eventrelay\core\json_encoder;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;

const SITE = 'lms-demo';
const DOWNSTREAM = 'demo.downstream';

$connection = new AMQPStreamConnection('127.0.0.1', 5672, 'guest', 'guest');
$channel = $connection->channel();
$command = $argv[1] ?? '';

if ($command === 'setup') {
    // What a downstream system does: its own durable queue, bound to the events it wants.
    $channel->queue_declare(DOWNSTREAM, false, true, false, false);
    $channel->queue_bind(DOWNSTREAM, 'moodle.events', SITE . '.#');
    $channel->queue_purge(DOWNSTREAM);
    echo "    downstream queue " . DOWNSTREAM . " is bound to moodle.events with '" . SITE . ".#'\n";
} else if ($command === 'publish') {
    $channel->confirm_select();
    $builder = new envelope_builder(SITE, 'https://lms.example.edu');
    $now = time();
    $events = [
        ['\\core\\event\\user_created', ['objectid' => 42, 'relateduserid' => 42, 'contextid' => 137, 'crud' => 'c'],
            ['id' => '42', 'username' => 's.mensah', 'email' => 's.mensah@example.edu', 'firstname' => 'Sena',
             'lastname' => 'Mensah', 'suspended' => '0']],
        ['\\core\\event\\user_enrolment_created', ['objectid' => 311, 'relateduserid' => 42, 'courseid' => 7,
            'contextid' => 201, 'crud' => 'c', 'other' => ['enrol' => 'manual']],
            ['id' => '311', 'enrolid' => '19', 'userid' => '42', 'courseid' => '7', 'enrol' => 'manual', 'status' => '0']],
        ['\\core\\event\\role_assigned', ['objectid' => 5, 'relateduserid' => 42, 'courseid' => 7, 'contextid' => 201,
            'crud' => 'c', 'other' => ['id' => 877, 'component' => '', 'itemid' => 0]],
            ['id' => '877', 'roleid' => '5', 'roleshortname' => 'student', 'userid' => '42', 'contextid' => '201']],
        ['\\core\\event\\course_completed', ['objectid' => 5120, 'relateduserid' => 42, 'courseid' => 7,
            'contextid' => 201, 'crud' => 'u', 'other' => ['relateduserid' => 42]],
            ['id' => '5120', 'userid' => '42', 'courseid' => '7', 'timecompleted' => (string) $now]],
    ];
    $sequence = (int) (microtime(true) * 1000);
    foreach ($events as [$class, $fields, $snapshot]) {
        $data = $fields + ['eventname' => $class, 'userid' => 2, 'courseid' => 0, 'anonymous' => 0,
            'other' => null, 'timecreated' => $now];
        $event = $builder->build($data, $snapshot, $sequence++);
        publish($channel, $event, json_encoder::encode($event));
        echo "    -> moodle.ingest  {$event['moodlesite']}." . substr($event['type'], 7) . "  {$event['subject']}  id {$event['id']}\n";
    }
    // One bad event: a sequence that is not zero-padded to 20 digits.
    $bad = $builder->build($events[0][1] + ['eventname' => $events[0][0], 'userid' => 2, 'courseid' => 0,
        'anonymous' => 0, 'other' => null, 'timecreated' => $now], $events[0][2], $sequence++);
    $bad['sequence'] = '42';
    publish($channel, $bad, json_encode($bad, JSON_UNESCAPED_SLASHES));
    echo "    -> moodle.ingest  a bad event (sequence \"42\")          id {$bad['id']}\n";
    $channel->wait_for_pending_acks(10);
} else if ($command === 'show') {
    $want = (int) ($argv[2] ?? 4);
    $deadline = microtime(true) + 15;
    $seen = 0;
    while ($seen < $want && microtime(true) < $deadline) {
        $message = $channel->basic_get(DOWNSTREAM, true);
        if (!$message) {
            usleep(200000);
            continue;
        }
        $event = json_decode($message->getBody(), true);
        $seen++;
        echo "    <- moodle.events  {$message->getRoutingKey()}  {$event['subject']}  sequence {$event['sequence']}\n";
    }
    if ($seen < $want) {
        echo "    (only $seen of $want arrived within 15 s)\n";
    }
    // Look at the DLQ without taking anything: every message goes back.
    $dead = [];
    while ($message = $channel->basic_get('relay.dlq', false)) {
        $dead[] = $message;
        $headers = $message->has('application_headers') ? $message->get('application_headers')->getNativeData() : [];
        if (($headers['x-relay-site'] ?? '') === SITE) {
            echo "    relay.dlq: class {$headers['x-relay-error-class']}, code {$headers['x-relay-error-code']}\n";
            echo "               reason: {$headers['x-relay-error-message']}\n";
        }
    }
    foreach ($dead as $message) {
        $message->nack(true);
    }
} else {
    fwrite(STDERR, "usage: php demo-client.php setup|publish|show [N]\n");
    exit(2);
}
$channel->close();
$connection->close();

/**
 * Publishes an event to moodle.ingest with the properties the plugin sets.
 *
 * @param \PhpAmqpLib\Channel\AMQPChannel $channel Confirm-mode channel.
 * @param array $event The event.
 * @param string $body Its JSON.
 */
function publish($channel, array $event, string $body): void {
    $message = new AMQPMessage($body, [
        'message_id' => $event['id'],
        'content_type' => 'application/cloudevents+json',
        'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
        'timestamp' => time(),
        'type' => $event['type'],
        'app_id' => 'local_eventrelay',
    ]);
    $key = $event['moodlesite'] . '.' . substr($event['type'], strlen('moodle.'));
    $channel->basic_publish($message, 'moodle.ingest', $key);
}
