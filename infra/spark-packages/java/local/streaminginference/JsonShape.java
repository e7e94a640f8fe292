package local.streaminginference;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import java.io.IOException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;

/**
 * The top-level shape of a JSON value, read in one pass over its bytes: is it one object with
 * nothing after it, is a key given twice, and how is each of the given fields given.
 *
 * <p>The result is a string of {@code 1 + fields} characters. The first says what the value is:
 *
 * <ul>
 *   <li>{@code o}: one JSON object, nothing but whitespace after it, no key given twice;
 *   <li>{@code d}: the same, but a key is given twice;
 *   <li>{@code t}: a complete JSON object, then something else (a second value, any text);
 *   <li>{@code x}: not a JSON object (not JSON, cut short, empty, or another JSON value).
 * </ul>
 *
 * <p>Then one character per field, in the given order, for its top-level key: {@code a} absent,
 * {@code n} JSON {@code null}, {@code s} a string, {@code v} any other value (a number, a
 * boolean, NaN or Infinity, an object, an array). When a key is given twice, the last one
 * counts; in a value that is not one object, the fields read before the parse stopped keep
 * theirs. The parser accepts what Spark's JSON reader accepts as the record judge sets it up
 * (NaN and Infinity; no comments, single quotes or leading zeros); it does not check UTF-8
 * inside strings.
 * Never throws on the value's content; a null value gives null.
 */
public final class JsonShape implements UDF1<byte[], String> {
  private static final long serialVersionUID = 1L;
  /** The parser's set-up, shared with {@link JsonReason}: both read values alike. */
  static final JsonFactory FACTORY =
      JsonFactory.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();

  private final HashMap<String, Integer> positions = new HashMap<>();
  private final int fields;

  public JsonShape(String[] names) {
    for (int i = 0; i < names.length; i++) {
      positions.put(names[i], i + 1);
    }
    fields = names.length;
  }

  /** The shape of {@code value} (see the class), as a column named {@code json_shape}. */
  public static Column column(String[] names, Column value) {
    return functions
        .udf(new JsonShape(names), DataTypes.StringType)
        .withName("json_shape")
        .apply(value);
  }

  @Override
  public String call(byte[] value) {
    if (value == null) {
      return null;
    }
    char[] shape = new char[fields + 1];
    Arrays.fill(shape, 'a');
    shape[0] = 'x';
    boolean closed = false; // the object's closing brace was read
    try (JsonParser parser = FACTORY.createParser(value)) {
      if (parser.nextToken() == JsonToken.START_OBJECT) {
        HashSet<String> seen = new HashSet<>();
        boolean repeated = false;
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
          String name = parser.currentName();
          repeated |= !seen.add(name);
          JsonToken token = parser.nextToken();
          Integer position = positions.get(name);
          if (position != null) {
            shape[position] = token == JsonToken.VALUE_NULL ? 'n'
                : token == JsonToken.VALUE_STRING ? 's' : 'v';
          }
          if (token == JsonToken.START_OBJECT || token == JsonToken.START_ARRAY) {
            parser.skipChildren();
          }
        }
        closed = parser.currentToken() == JsonToken.END_OBJECT;
        shape[0] = !closed ? 'x' : parser.nextToken() != null ? 't' : repeated ? 'd' : 'o';
      }
    } catch (IOException e) {
      shape[0] = closed ? 't' : 'x';
    }
    return new String(shape);
  }
}
