package local.streaminginference;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Why a rejected JSON value is rejected, for what its form says: the value's structure, its
 * keys, and the fields Spark's typed parse could not read. One pass of the tokenizer over the
 * value, and a second only for a value that is not one object.
 *
 * <p>Called with the value's bytes (valid UTF-8, not empty: the caller tests those first) and
 * one character per field, {@code 1} where the typed parse left the field null. The result is
 * a {@code struct<kind, detail>} for the first of these that applies, else null (the caller
 * then looks at the typed values):
 *
 * <ul>
 *   <li>{@code too_deeply_nested}: not JSON, and it opens {@code depth} arrays or objects in a
 *       row;
 *   <li>{@code not_an_object}: JSON (one value, or several separated by commas), not an object;
 *   <li>{@code concatenated_objects}: a complete object, then (after an optional comma) another
 *       object or array;
 *   <li>{@code trailing_data}: a complete object, then anything else;
 *   <li>{@code malformed_json}: not JSON;
 *   <li>{@code duplicate_field}: a top-level key given twice;
 *   <li>{@code missing_field}: a required field's top-level key is absent;
 *   <li>{@code type_mismatch}: a field given as a value that the typed parse left null.
 * </ul>
 *
 * <p>The parser is {@link JsonShape}'s. A field's text in a detail is its
 * string's content, a scalar's text, or an object or array written compactly, cut to 80
 * characters.
 */
public final class JsonReason implements UDF2<byte[], String, Row> {
  private static final long serialVersionUID = 1L;
  private static final JsonFactory FACTORY = JsonShape.FACTORY;
  private static final int SNIPPET = 80;
  private static final StructType REASON =
      new StructType().add("kind", DataTypes.StringType).add("detail", DataTypes.StringType);

  private final String[] names;
  private final String[] types;
  private final boolean[] required;
  private final int depth;
  private final HashMap<String, Integer> positions = new HashMap<>();

  public JsonReason(String[] names, String[] types, boolean[] required, int depth) {
    this.names = names;
    this.types = types;
    this.required = required;
    this.depth = depth;
    for (int i = 0; i < names.length; i++) {
      positions.put(names[i], i);
    }
  }

  /** The reason (see the class) of {@code value}, as a column named {@code json_reason}. */
  public static Column column(
      String[] names, String[] types, boolean[] required, int depth, Column value, Column untyped) {
    return functions
        .udf(new JsonReason(names, types, required, depth), REASON)
        .withName("json_reason")
        .apply(value, untyped);
  }

  private static Row reason(String kind, String detail) {
    return RowFactory.create(kind, detail);
  }

  @Override
  public Row call(byte[] value, String untyped) {
    if (value == null) {
      return null;
    }
    LinkedHashMap<String, Integer> seen = new LinkedHashMap<>();
    String[] given = new String[names.length];
    boolean closed = false; // the object's closing brace was read
    boolean object = false; // the value starts an object
    long end = -1; // where the object ends, in bytes
    try (JsonParser parser = FACTORY.createParser(value)) {
      object = parser.nextToken() == JsonToken.START_OBJECT;
      if (object) {
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
          String name = parser.currentName();
          seen.merge(name, 1, Integer::sum);
          JsonToken token = parser.nextToken();
          Integer position = positions.get(name);
          if (position != null) {
            given[position] = token == JsonToken.VALUE_NULL ? null : textOf(parser, token);
          } else if (token == JsonToken.START_OBJECT || token == JsonToken.START_ARRAY) {
            parser.skipChildren();
          }
        }
        closed = parser.currentToken() == JsonToken.END_OBJECT;
        if (closed) {
          end = parser.currentLocation().getByteOffset();
          if (parser.nextToken() != null) {
            return afterObject(value, end);
          }
        }
      }
    } catch (IOException e) {
      if (closed) {
        return afterObject(value, end);
      }
    }
    if (!closed) {
      return notAnObject(new String(value, StandardCharsets.UTF_8), object);
    }
    List<String> details = new ArrayList<>();
    for (Map.Entry<String, Integer> key : seen.entrySet()) {
      if (key.getValue() > 1) {
        details.add("field '" + key.getKey() + "' given twice");
      }
    }
    if (!details.isEmpty()) {
      return reason("duplicate_field", String.join("; ", details));
    }
    for (int i = 0; i < names.length; i++) {
      if (required[i] && !seen.containsKey(names[i])) {
        details.add("missing field '" + names[i] + "'");
      }
    }
    if (!details.isEmpty()) {
      return reason("missing_field", String.join("; ", details));
    }
    for (int i = 0; i < names.length; i++) {
      if (given[i] != null && untyped != null && untyped.charAt(i) == '1') {
        details.add("field '" + names[i] + "' is not " + types[i] + ": " + snippet(given[i]));
      }
    }
    if (!details.isEmpty()) {
      return reason("type_mismatch", String.join("; ", details));
    }
    return null;
  }

  /** A field's text: a string's content, a scalar's text, an object or array written compactly. */
  private static String textOf(JsonParser parser, JsonToken token) throws IOException {
    if (token != JsonToken.START_OBJECT && token != JsonToken.START_ARRAY) {
      return parser.getText();
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (JsonGenerator generator = FACTORY.createGenerator(out)) {
      generator.copyCurrentStructure(parser);
    }
    return out.toString(StandardCharsets.UTF_8);
  }

  /** A complete object ending at byte {@code end} of {@code value}, then something else. */
  private static Row afterObject(byte[] value, long end) {
    String text = new String(value, StandardCharsets.UTF_8);
    int i = skipSpace(value, (int) Math.max(0, end));
    if (i < value.length && value[i] == ',') {
      i = skipSpace(value, i + 1);
    }
    if (i < value.length && (value[i] == '{' || value[i] == '[')) {
      return reason(
          "concatenated_objects", "value holds more than one JSON value: " + snippet(text));
    }
    return reason("trailing_data", "value has data after its JSON object: " + snippet(text));
  }

  private Row notAnObject(String text, boolean object) {
    boolean json = !object && isJsonList(text);
    if (!json && nestsDeep(text)) {
      return reason(
          "too_deeply_nested", "value nests arrays or objects more than " + depth + " levels deep");
    }
    if (json) {
      return reason("not_an_object", "value is JSON but not an object: " + snippet(text));
    }
    return reason("malformed_json", "value is not valid JSON: " + snippet(text));
  }

  /** Whether {@code text} is JSON values separated by commas (the content of an array). */
  private static boolean isJsonList(String text) {
    try (JsonParser parser = FACTORY.createParser("[" + text + "]")) {
      if (parser.nextToken() != JsonToken.START_ARRAY) {
        return false;
      }
      parser.skipChildren();
      return parser.nextToken() == null;
    } catch (IOException e) {
      return false;
    }
  }

  /** Whether {@code text} opens {@code depth} arrays or objects in a row (spaces between). */
  private boolean nestsDeep(String text) {
    int run = 0;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == '[' || c == '{') {
        if (++run >= depth) {
          return true;
        }
      } else if (!isSpace(c)) {
        run = 0;
      }
    }
    return false;
  }

  private static boolean isSpace(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == 0x0B;
  }

  private static int skipSpace(byte[] value, int from) {
    int i = from;
    while (i < value.length && isSpace(value[i])) {
      i++;
    }
    return i;
  }

  /** {@code text} cut to 77 characters and {@code ...} when it has more than 80. */
  private static String snippet(String text) {
    if (text.codePointCount(0, text.length()) <= SNIPPET) {
      return text;
    }
    return text.substring(0, text.offsetByCodePoints(0, SNIPPET - 3)) + "...";
  }
}
